package devices

import (
	"fmt"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// Host gives the devices their buses and pins. Tests hand in one backed by
// i2ctest and gpiotest.
type Host struct {
	// Init prepares the host's drivers. It is called once, before the first
	// bus or pin is opened, and again on the next open if it failed; never
	// when no device is configured.
	Init func() error
	// OpenI2C opens an I²C bus by name, alias or number ("1" is
	// /dev/i2c-1); "" is the first bus.
	OpenI2C func(bus string) (i2c.BusCloser, error)
	// Pin returns a GPIO pin by name ("GPIO17") or number.
	Pin func(name string) (gpio.PinIO, error)
}

// PeriphHost is the host through periph.io: host.Init, i2creg and gpioreg.
// host.Init loads the drivers of the board it runs on (Raspberry Pi and
// other ARM boards, the GPIO character device, sysfs); until it is called,
// nothing under /dev or /sys is opened.
func PeriphHost() *Host {
	return &Host{
		Init: func() error {
			_, err := host.Init()
			return err
		},
		OpenI2C: func(bus string) (i2c.BusCloser, error) { return i2creg.Open(bus) },
		Pin: func(name string) (gpio.PinIO, error) {
			p := gpioreg.ByName(name)
			if p == nil {
				return nil, fmt.Errorf("%w: %q", ErrNoPin, name)
			}
			return p, nil
		},
	}
}
