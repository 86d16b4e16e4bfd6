package ads1115_test

import (
	"context"
	"fmt"
	"log"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/outpost-edge/outpost/devices/ads1115"
	"github.com/outpost-edge/outpost/devices/internal/devtest"
)

func Example() {
	// A 4–20 mA pressure transmitter (0–10 bar) across a 250 Ω shunt on
	// AIN1. On a gateway the bus is i2creg.Open("1"); here it replays a
	// conversion that reads 16000 at ±6.144 V (3 V, 12 mA).
	bus := &i2ctest.Playback{Ops: devtest.ADS1115Read(0x48, cfgCh1FS6144, 1, 16000)}
	d, err := ads1115.New(bus, 0x48, nil)
	if err != nil {
		log.Fatal(err)
	}
	fs := ads1115.RangeFor(5 * physic.Volt) // the loop's top, 20 mA × 250 Ω
	v, err := d.Read(context.Background(), 1, fs)
	if err != nil {
		log.Fatal(err)
	}
	scale := ads1115.Scale{In: [2]float64{1, 5}, Out: [2]float64{0, 10}}
	fmt.Printf("%s at ±%s: %s = %.2f bar\n", d, fs, v, scale.Apply(float64(v)/float64(physic.Volt)))
	// Output:
	// ADS1115{0x48} at ±6.144V: 3V = 5.00 bar
}
