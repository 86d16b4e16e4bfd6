package gpioin

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Opts configure an Input.
type Opts struct {
	Pull gpio.Pull
	// Edge is which changes Next reports: gpio.RisingEdge (to high),
	// gpio.FallingEdge (to low) or gpio.BothEdges. gpio.NoEdge configures
	// the pin without edge detection, for Read only.
	Edge gpio.Edge
	// Debounce is how long the pin must be quiet before a change counts.
	Debounce time.Duration
	// Slice bounds each wait for an edge, which is how soon Next notices
	// that its context is done. Default: 250ms.
	Slice time.Duration
}

// Input is a digital input pin.
type Input struct {
	pin  gpio.PinIn
	o    Opts
	last gpio.Level
}

// New configures p as an input and reads its level.
func New(p gpio.PinIn, o Opts) (*Input, error) {
	if o.Slice <= 0 {
		o.Slice = 250 * time.Millisecond
	}
	edge := gpio.NoEdge
	if o.Edge != gpio.NoEdge {
		edge = gpio.BothEdges
	}
	if err := p.In(o.Pull, edge); err != nil {
		return nil, fmt.Errorf("configuring %s as input: %w", p, err)
	}
	in := &Input{pin: p, o: o}
	in.last = p.Read()
	return in, nil
}

func (in *Input) String() string { return in.pin.String() }

// Read returns the pin's level now, and makes it the level Next compares
// changes with.
func (in *Input) Read() gpio.Level {
	in.last = in.pin.Read()
	return in.last
}

// Last is the level last read or reported.
func (in *Input) Last() gpio.Level { return in.last }

// Next waits for the next debounced change that Edge asks for and returns
// the new level. It returns ctx's error when ctx is done first. Next and
// Read must not be called concurrently.
func (in *Input) Next(ctx context.Context) (gpio.Level, error) {
	for {
		if err := ctx.Err(); err != nil {
			return in.last, err
		}
		if !in.pin.WaitForEdge(in.o.Slice) {
			continue
		}
		// Wait until the pin is quiet for Debounce: every edge restarts it.
		if in.o.Debounce > 0 {
			for in.pin.WaitForEdge(in.o.Debounce) {
				if err := ctx.Err(); err != nil {
					return in.last, err
				}
			}
		}
		l := in.pin.Read()
		if l == in.last {
			continue // bounced back
		}
		in.last = l
		if in.o.Edge == gpio.BothEdges || (in.o.Edge == gpio.RisingEdge) == bool(l) {
			return l, nil
		}
	}
}
