package gpioout_test

import (
	"fmt"
	"log"

	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/outpost-edge/outpost/devices/gpioout"
)

func Example() {
	// An uplink LED on GPIO27; on a gateway, gpioreg.ByName("GPIO27").
	p := &gpiotest.Pin{N: "GPIO27", Num: 27}
	led, err := gpioout.New(p)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []gpioout.Mode{gpioout.On, gpioout.Blink, gpioout.Blink, gpioout.Off} {
		if err := led.Set(m); err != nil {
			log.Fatal(err)
		}
		fmt.Println(m, p.Read())
	}
	// Output:
	// on High
	// blink Low
	// blink High
	// off Low
}
