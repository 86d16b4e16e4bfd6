package bmx280_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/outpost-edge/outpost/devices/bmx280"
	"github.com/outpost-edge/outpost/devices/internal/devtest"
)

func TestSense(t *testing.T) {
	for _, tc := range []struct {
		name     string
		model    bmx280.Model
		chipID   byte
		humidity physic.RelativeHumidity
	}{
		{"bme280", bmx280.BME280, 0x60, 421376 * physic.MicroRH}, // 43149/1024 %RH, truncated to µRH
		{"bmp280", bmx280.BMP280, 0x58, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := devtest.BMx280Init(0x76, tc.chipID)
			ops = append(ops, devtest.BMx280Sense(0x76, tc.humidity != 0)...)
			bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
			d, err := bmx280.NewI2C(bus, 0x76, tc.model, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d.Model() != tc.model {
				t.Errorf("Model() = %s, want %s", d.Model(), tc.model)
			}
			var e physic.Env
			if err := d.SenseContext(t.Context(), &e); err != nil {
				t.Fatal(err)
			}
			// The datasheet's worked example: 25.08 °C, 100653.27 Pa (the
			// 64-bit integer formula gives 25767233/256 Pa).
			if want := 25080*physic.MilliCelsius + physic.ZeroCelsius; e.Temperature != want {
				t.Errorf("temperature %s, want %s", e.Temperature, want)
			}
			if want := physic.Pressure(25767233) * 15625 * physic.MicroPascal / 4; e.Pressure != want {
				t.Errorf("pressure %s (%d nPa), want %s", e.Pressure, e.Pressure, want)
			}
			if e.Humidity != tc.humidity {
				t.Errorf("humidity %s, want %s", e.Humidity, tc.humidity)
			}
			if err := bus.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNewI2CErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		addr        uint16
		ops         []i2ctest.IO
		want        bmx280.Model
		errIs       error
		errContains string
	}{
		{"a BMP280 configured as bme280", 0x76, devtest.BMx280Init(0x76, 0x58), bmx280.BME280, bmx280.ErrWrongChip, "found a BMP280 at 0x76, configured as BME280"},
		{"a BMP180", 0x77, []i2ctest.IO{{Addr: 0x77, W: []byte{0xD0}, R: []byte{0x55}}}, bmx280.BMP280, nil, ""}, // fails reading its calibration
		{"no chip (id 0x00)", 0x76, []i2ctest.IO{{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x00}}}, bmx280.BME280, nil, "unexpected chip id 0"},
		{"bad address", 0x48, nil, bmx280.BME280, nil, "address not supported"},
		{"nothing answers", 0x76, nil, bmx280.BME280, nil, "unexpected Tx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops, DontPanic: true}
			_, err := bmx280.NewI2C(bus, tc.addr, tc.want, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("error %v is not %v", err, tc.errIs)
			}
			if !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("error %q does not contain %q", err, tc.errContains)
			}
		})
	}
}

func TestSenseContextDone(t *testing.T) {
	bus := &i2ctest.Playback{Ops: devtest.BMx280Init(0x76, 0x60), DontPanic: true}
	d, err := bmx280.NewI2C(bus, 0x76, bmx280.BME280, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var e physic.Env
	if err := d.SenseContext(ctx, &e); !errors.Is(err, context.Canceled) {
		t.Errorf("SenseContext with a done context: %v", err)
	}
	if err := bus.Close(); err != nil { // no measurement was started
		t.Error(err)
	}
}
