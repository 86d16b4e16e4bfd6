package gpioin_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/outpost-edge/outpost/devices/gpioin"
)

// change is a level the test drives the pin to, at a time after the start.
type change struct {
	at    time.Duration
	level gpio.Level
}

// drive sends the changes to the pin's edge channel at their times.
func drive(p *gpiotest.Pin, changes []change) {
	start := time.Now()
	for _, c := range changes {
		time.Sleep(c.at - time.Since(start))
		p.EdgesChan <- c.level
	}
}

type report struct {
	at    time.Duration
	level gpio.Level
}

func TestNextDebounce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edge     gpio.Edge
		debounce time.Duration
		changes  []change
		want     []report
	}{
		{"a bouncing contact closes and opens once each", gpio.BothEdges, 50 * time.Millisecond,
			[]change{
				{100 * time.Millisecond, gpio.High}, {102 * time.Millisecond, gpio.Low}, {105 * time.Millisecond, gpio.High}, // bounces, settles high
				{1 * time.Second, gpio.Low}, {1001 * time.Millisecond, gpio.High}, {1003 * time.Millisecond, gpio.Low}, // settles low
			},
			// Reported when the pin has been quiet for 50ms after its last edge.
			[]report{{155 * time.Millisecond, gpio.High}, {1053 * time.Millisecond, gpio.Low}}},
		{"a glitch shorter than debounce is no change", gpio.BothEdges, 50 * time.Millisecond,
			[]change{{100 * time.Millisecond, gpio.High}, {120 * time.Millisecond, gpio.Low}},
			nil},
		{"without debounce every edge counts", gpio.BothEdges, 0,
			[]change{{100 * time.Millisecond, gpio.High}, {120 * time.Millisecond, gpio.Low}},
			[]report{{100 * time.Millisecond, gpio.High}, {120 * time.Millisecond, gpio.Low}}},
		{"rising only", gpio.RisingEdge, 10 * time.Millisecond,
			[]change{{100 * time.Millisecond, gpio.High}, {200 * time.Millisecond, gpio.Low}, {300 * time.Millisecond, gpio.High}},
			[]report{{110 * time.Millisecond, gpio.High}, {310 * time.Millisecond, gpio.High}}},
		{"falling only", gpio.FallingEdge, 10 * time.Millisecond,
			[]change{{100 * time.Millisecond, gpio.High}, {200 * time.Millisecond, gpio.Low}},
			[]report{{210 * time.Millisecond, gpio.Low}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan gpio.Level)}
				in, err := gpioin.New(p, gpioin.Opts{Pull: gpio.PullDown, Edge: tc.edge, Debounce: tc.debounce})
				if err != nil {
					t.Fatal(err)
				}
				if in.Last() != gpio.Low {
					t.Fatalf("initial level %s, want low (pulled down)", in.Last())
				}
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				go drive(p, tc.changes)
				start := time.Now()
				var got []report
				for {
					l, err := in.Next(ctx)
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Fatal(err)
						}
						break
					}
					got = append(got, report{time.Since(start), l})
				}
				if len(got) != len(tc.want) {
					t.Fatalf("reported %v, want %v", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("report %d: %v, want %v", i, got[i], tc.want[i])
					}
				}
			})
		})
	}
}

func TestNextStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
		in, _ := gpioin.New(p, gpioin.Opts{Edge: gpio.BothEdges, Slice: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(1500*time.Millisecond, cancel)
		start := time.Now()
		if _, err := in.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next: %v", err)
		}
		// Next notices at the end of the wait slice it is in.
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Next returned after %s, want 2s", d)
		}
	})
}

func TestNewWithoutEdges(t *testing.T) {
	// gpiotest refuses edge detection without an edge channel, as a pin
	// without interrupt support does.
	p := &gpiotest.Pin{N: "GPIO4"}
	if _, err := gpioin.New(p, gpioin.Opts{Edge: gpio.BothEdges}); err == nil {
		t.Fatal("New succeeded on a pin without edge detection")
	}
	in, err := gpioin.New(p, gpioin.Opts{Pull: gpio.PullUp, Edge: gpio.NoEdge})
	if err != nil {
		t.Fatal(err)
	}
	if l := in.Read(); l != gpio.High {
		t.Errorf("Read = %s, want high (pulled up)", l)
	}
	p.Out(gpio.Low)
	if l := in.Read(); l != gpio.Low {
		t.Errorf("Read = %s, want low", l)
	}
}
