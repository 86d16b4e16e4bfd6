package ads1115_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/outpost-edge/outpost/devices/ads1115"
	"github.com/outpost-edge/outpost/devices/internal/devtest"
)

// Config words (datasheet, config register): OS=1 (start), MUX=1xx (AINx
// against GND), PGA, MODE=1 (single-shot), DR=100 (128 SPS), COMP_QUE=11
// (comparator off).
const (
	cfgCh0FS4096 = 0xC383 // 1 100 001 1 100 0 0 0 11: AIN0, ±4.096 V
	cfgCh1FS6144 = 0xD183 // 1 101 000 1 100 0 0 0 11: AIN1, ±6.144 V
	cfgCh3FS0256 = 0xFB83 // 1 111 101 1 100 0 0 0 11: AIN3, ±0.256 V
)

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   int
		fs   physic.ElectricPotential
		cfg  uint16
		busy int
		raw  int16
		want physic.ElectricPotential
	}{
		// 24000 × 4.096 V / 32768 = 3.000 V (125 µV per LSB).
		{"3 V on AIN0 at ±4.096 V", 0, 4096 * physic.MilliVolt, cfgCh0FS4096, 0, 24000, 3 * physic.Volt},
		// 12 mA across 250 Ω: 16000 × 6.144 V / 32768 = 3.000 V.
		{"12 mA loop on AIN1 at ±6.144 V, two busy polls", 1, 6144 * physic.MilliVolt, cfgCh1FS6144, 2, 16000, 3 * physic.Volt},
		// Two's complement: 0xFFF0 = -16 LSB = -2 mV.
		{"slightly negative", 0, 4096 * physic.MilliVolt, cfgCh0FS4096, 0, -16, -2 * physic.MilliVolt},
		// Full scale: 0x7FFF at ±0.256 V is 0.256 V − 1 LSB (7.8125 µV).
		{"full scale at ±0.256 V", 3, 256 * physic.MilliVolt, cfgCh3FS0256, 0, math.MaxInt16, 255992187 * physic.NanoVolt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bus := &i2ctest.Playback{Ops: devtest.ADS1115Read(0x48, tc.cfg, tc.busy, tc.raw), DontPanic: true}
				d, err := ads1115.New(bus, 0x48, nil)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				v, err := d.Read(t.Context(), tc.ch, tc.fs)
				if err != nil {
					t.Fatal(err)
				}
				if v != tc.want {
					t.Errorf("Read = %s (%d nV), want %s", v, v, tc.want)
				}
				// One conversion time (1/128 s), then 1 ms (more than a tenth
				// of one) per busy poll.
				conv := time.Second / 128
				if got, want := time.Since(start), conv+time.Duration(tc.busy)*time.Millisecond; got != want {
					t.Errorf("Read took %s, want %s", got, want)
				}
				if err := bus.Close(); err != nil {
					t.Error(err)
				}
			})
		})
	}
}

func TestReadNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The config never shows OS=1: after three conversion times, give up.
		ops := devtest.ADS1115Read(0x48, cfgCh0FS4096, 21, 0)
		bus := &i2ctest.Playback{Ops: ops[:len(ops)-2], DontPanic: true}
		d, _ := ads1115.New(bus, 0x48, nil)
		if _, err := d.Read(t.Context(), 0, 4096*physic.MilliVolt); !errors.Is(err, ads1115.ErrNotReady) {
			t.Fatalf("Read: %v, want ErrNotReady", err)
		}
	})
}

func TestReadContextDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: devtest.ADS1115Read(0x48, cfgCh0FS4096, 0, 0)[:1], DontPanic: true}
		d, _ := ads1115.New(bus, 0x48, nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		if _, err := d.Read(ctx, 0, 4096*physic.MilliVolt); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read: %v, want the context's error", err)
		}
	})
}

func TestArguments(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true}
	if _, err := ads1115.New(bus, 0x50, nil); err == nil {
		t.Error("New accepted address 0x50")
	}
	if _, err := ads1115.New(bus, 0x48, &ads1115.Opts{DataRate: 100}); err == nil {
		t.Error("New accepted 100 SPS")
	}
	d, _ := ads1115.New(bus, 0x4b, &ads1115.Opts{DataRate: 860})
	if _, err := d.Read(t.Context(), 4, 4096*physic.MilliVolt); err == nil {
		t.Error("Read accepted channel 4")
	}
	if _, err := d.Read(t.Context(), 0, 5*physic.Volt); err == nil {
		t.Error("Read accepted a 5 V range")
	}
}

func TestRangeFor(t *testing.T) {
	for _, tc := range []struct{ v, want physic.ElectricPotential }{
		{5 * physic.Volt, 6144 * physic.MilliVolt},
		{4096 * physic.MilliVolt, 4096 * physic.MilliVolt},
		{3300 * physic.MilliVolt, 4096 * physic.MilliVolt},
		{1 * physic.Volt, 1024 * physic.MilliVolt},
		{100 * physic.MilliVolt, 256 * physic.MilliVolt},
		{10 * physic.Volt, 6144 * physic.MilliVolt},
	} {
		if got := ads1115.RangeFor(tc.v); got != tc.want {
			t.Errorf("RangeFor(%s) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestScale(t *testing.T) {
	// 4–20 mA across 250 Ω is 1–5 V; the transmitter spans 0–10 bar.
	s := ads1115.Scale{In: [2]float64{1, 5}, Out: [2]float64{0, 10}}
	for _, tc := range []struct{ in, want float64 }{
		{1, 0}, {5, 10}, {3, 5}, {0, -2.5}, // a broken loop reads below range
	} {
		if got := s.Apply(tc.in); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Apply(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN((ads1115.Scale{}).Apply(1)) {
		t.Error("a degenerate scale does not give NaN")
	}
}
