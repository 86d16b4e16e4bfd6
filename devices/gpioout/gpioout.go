package gpioout

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Mode is what the output shows.
type Mode int

const (
	Off   Mode = iota // low
	On                // high
	Blink             // toggled every period
)

func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case On:
		return "on"
	case Blink:
		return "blink"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Output is a digital output pin.
type Output struct {
	pin   gpio.PinOut
	level gpio.Level
}

// New sets p low and returns it as an Output.
func New(p gpio.PinOut) (*Output, error) {
	if err := p.Out(gpio.Low); err != nil {
		return nil, fmt.Errorf("configuring %s as output: %w", p, err)
	}
	return &Output{pin: p}, nil
}

func (o *Output) String() string { return o.pin.String() }

// Set drives the pin for mode m; Blink toggles it.
func (o *Output) Set(m Mode) error {
	l := gpio.Level(m == On)
	if m == Blink {
		l = !o.level
	}
	if err := o.pin.Out(l); err != nil {
		return fmt.Errorf("setting %s %s: %w", o.pin, l, err)
	}
	o.level = l
	return nil
}

// Run sets the pin from state every period until ctx is done, then sets it
// low. It returns nil when ctx is done, or the first error setting the pin.
// state is called from Run's goroutine and must not block.
func (o *Output) Run(ctx context.Context, period time.Duration, state func() Mode) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if err := o.Set(state()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return o.Set(Off)
		case <-t.C:
		}
	}
}
