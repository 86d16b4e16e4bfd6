package gpioin_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/outpost-edge/outpost/devices/gpioin"
)

func Example() {
	// A door contact to ground on GPIO17, with the pull-up on: high is open.
	// On a gateway the pin is gpioreg.ByName("GPIO17") after host.Init().
	p := &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan gpio.Level, 3)}
	in, err := gpioin.New(p, gpioin.Opts{Pull: gpio.PullUp, Edge: gpio.BothEdges, Debounce: 20 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("door at start:", in.Last())

	// The door closes, and the contact bounces.
	p.EdgesChan <- gpio.Low
	p.EdgesChan <- gpio.High
	p.EdgesChan <- gpio.Low
	l, err := in.Next(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("door now:", l)
	// Output:
	// door at start: High
	// door now: Low
}
