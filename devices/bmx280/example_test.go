package bmx280_test

import (
	"context"
	"fmt"
	"log"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/outpost-edge/outpost/devices/bmx280"
	"github.com/outpost-edge/outpost/devices/internal/devtest"
)

func Example() {
	// On a gateway the bus is i2creg.Open("1") after host.Init(); here it
	// replays a BME280's traffic with the datasheet's example values.
	bus := &i2ctest.Playback{Ops: append(devtest.BMx280Init(0x76, 0x60), devtest.BMx280Sense(0x76, true)...)}

	d, err := bmx280.NewI2C(bus, 0x76, bmx280.BME280, nil)
	if err != nil {
		log.Fatal(err)
	}
	var e physic.Env
	if err := d.SenseContext(context.Background(), &e); err != nil {
		log.Fatal(err)
	}
	fmt.Println(d)
	fmt.Println(e.Temperature, e.Pressure, e.Humidity)
	// Output:
	// BME280{playback(118)}
	// 25.080°C 100.653kPa 42.1%rH
}
