package bmx280

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// Model is the chip a Dev must be.
type Model string

const (
	BME280 Model = "BME280"
	BMP280 Model = "BMP280"
)

// ErrWrongChip means the chip at the address is not the configured model.
var ErrWrongChip = errors.New("bmx280: wrong chip")

// Opts are the oversampling of each value; the zero value means 4x for
// each, bmxx80.DefaultOpts.
type Opts = bmxx80.Opts

// Dev is a BME280 or BMP280 on an I²C bus, measuring in forced mode. It
// implements physic.SenseEnv through the embedded bmxx80.Dev.
type Dev struct {
	*bmxx80.Dev
	model Model
}

// NewI2C reads the chip id and calibration of the device at addr (0x76 or
// 0x77) and configures it, in sleep mode. It fails with ErrWrongChip when
// the chip is not a want.
func NewI2C(bus i2c.Bus, addr uint16, want Model, o *Opts) (*Dev, error) {
	if o == nil {
		o = &bmxx80.DefaultOpts
	}
	d, err := bmxx80.NewI2C(bus, addr, o)
	if err != nil {
		return nil, fmt.Errorf("initialising %s at %#x: %w", want, addr, err)
	}
	found, _, _ := strings.Cut(d.String(), "{")
	if Model(found) != want {
		return nil, fmt.Errorf("%w: found a %s at %#x, configured as %s", ErrWrongChip, found, addr, want)
	}
	return &Dev{Dev: d, model: want}, nil
}

// Model is the chip found.
func (d *Dev) Model() Model { return d.model }

// SenseContext is Sense for a caller with a context: it returns ctx's error
// when ctx is done before the measurement starts. A measurement that has
// started is finished (it takes ~26 ms with 4x oversampling).
func (d *Dev) SenseContext(ctx context.Context, e *physic.Env) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.Sense(e)
}
