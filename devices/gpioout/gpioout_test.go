package gpioout_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/outpost-edge/outpost/devices/gpioout"
)

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &gpiotest.Pin{N: "GPIO27", L: gpio.High}
		out, err := gpioout.New(p)
		if err != nil {
			t.Fatal(err)
		}
		if p.Read() != gpio.Low {
			t.Fatal("New did not set the pin low")
		}
		var mode atomic.Int64
		mode.Store(int64(gpioout.On))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			done <- out.Run(ctx, 100*time.Millisecond, func() gpioout.Mode { return gpioout.Mode(mode.Load()) })
		}()

		synctest.Wait()
		if p.Read() != gpio.High {
			t.Error("On: pin is low")
		}
		// Blink toggles each period: starting from high, low at 100ms (the
		// next tick), high at 200ms, low at 300ms.
		mode.Store(int64(gpioout.Blink))
		var levels []gpio.Level
		for range 4 {
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			levels = append(levels, p.Read())
		}
		if want := []gpio.Level{gpio.Low, gpio.High, gpio.Low, gpio.High}; !equal(levels, want) {
			t.Errorf("blinking: %v, want %v", levels, want)
		}
		mode.Store(int64(gpioout.Off))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if p.Read() != gpio.Low {
			t.Error("Off: pin is high")
		}
		mode.Store(int64(gpioout.On))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if p.Read() != gpio.High {
			t.Fatal("On again: pin is low")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if p.Read() != gpio.Low {
			t.Error("the pin stayed high after Run returned")
		}
	})
}

func equal(a, b []gpio.Level) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
