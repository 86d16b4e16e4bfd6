// Package devtest has the I²C bus traffic that device tests replay with
// i2ctest.Playback, register by register, with the values of the
// datasheets' worked examples, and a few test doubles.
package devtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// The BMP280 datasheet (BST-BMP280-DS001) works the compensation formulas
// through with one set of calibration words and raw values, which give
// T = 25.08 °C (t_fine 128422) and p = 100653.27 Pa; the BME280 uses the
// same registers and formulas for temperature and pressure.
var (
	// Calibration 0x88..0xA1, little-endian 16-bit words: dig_T1 27504,
	// dig_T2 26435, dig_T3 -1000, dig_P1 36477, dig_P2 -10685, dig_P3 3024,
	// dig_P4 2855, dig_P5 140, dig_P6 -7, dig_P7 15500, dig_P8 -14600,
	// dig_P9 6000; then 0xA0 (reserved) and 0xA1 dig_H1 = 75 (BME280).
	calibTP = []byte{
		0x70, 0x6B, // dig_T1 0x6B70 = 27504
		0x43, 0x67, // dig_T2 0x6743 = 26435
		0x18, 0xFC, // dig_T3 0xFC18 = -1000
		0x7D, 0x8E, // dig_P1 0x8E7D = 36477
		0x43, 0xD6, // dig_P2 0xD643 = -10685
		0xD0, 0x0B, // dig_P3 0x0BD0 = 3024
		0x27, 0x0B, // dig_P4 0x0B27 = 2855
		0x8C, 0x00, // dig_P5 0x008C = 140
		0xF9, 0xFF, // dig_P6 0xFFF9 = -7
		0x8C, 0x3C, // dig_P7 0x3C8C = 15500
		0xF8, 0xC6, // dig_P8 0xC6F8 = -14600
		0x70, 0x17, // dig_P9 0x1770 = 6000
		0x00, // 0xA0 reserved
		0x4B, // 0xA1 dig_H1 = 75
	}
	// Humidity calibration 0xE1..0xE7 (BME280 only; the datasheet has no
	// worked example, these are a real part's, from periph's bmxx80 tests):
	// dig_H2 366, dig_H3 0, dig_H4 309 (0xE4 = bits 11:4, 0xE5[3:0] = bits
	// 3:0), dig_H5 0 (0xE5[7:4], 0xE6), dig_H6 30.
	calibH = []byte{0x6E, 0x01, 0x00, 0x13, 0x05, 0x00, 0x1E}
	// Data burst 0xF7..0xFE: press_msb, press_lsb, press_xlsb[7:4] (adc_P
	// 415148 = 0x655AC), temp_msb, temp_lsb, temp_xlsb[7:4] (adc_T 519888 =
	// 0x7EED0), hum_msb, hum_lsb (adc_H 0x6A3B = 27195, which the BME280
	// formula with t_fine 128422 turns into 43149/1024 = 42.14 %RH).
	dataTPH = []byte{0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6A, 0x3B}
)

// BMx280Init is what bmxx80.NewI2C does with the default options (4x
// oversampling): read the chip id, the calibration, and write the config
// in sleep mode. chipID is 0x60 for a BME280, 0x58 for a BMP280.
func BMx280Init(addr uint16, chipID byte) []i2ctest.IO {
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{0xD0}, R: []byte{chipID}}, // id
		{Addr: addr, W: []byte{0x88}, R: calibTP},        // calib00..calib25
	}
	if chipID == 0x60 {
		ops = append(ops,
			i2ctest.IO{Addr: addr, W: []byte{0xE1}, R: calibH}, // calib26..calib32
			// ctrl_meas 0x6C: osrs_t 011 (4x), osrs_p 011 (4x), mode 00 (sleep);
			// ctrl_hum 0x03: osrs_h 4x; config 0xA0: t_sb 101 (1 s), filter
			// off; ctrl_meas again, since ctrl_hum takes effect only after a
			// write to ctrl_meas.
			i2ctest.IO{Addr: addr, W: []byte{0xF4, 0x6C, 0xF2, 0x03, 0xF5, 0xA0, 0xF4, 0x6C}})
	} else if chipID == 0x58 {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0xF4, 0x6C, 0xF5, 0xA0, 0xF4, 0x6C}})
	}
	return ops
}

// BMx280Sense is one forced measurement: ctrl_meas mode 01 (forced), status
// with bit 3 (measuring) clear, then the data burst (8 bytes on a BME280,
// 6 without humidity on a BMP280).
func BMx280Sense(addr uint16, humidity bool) []i2ctest.IO {
	data := dataTPH
	if !humidity {
		data = dataTPH[:6]
	}
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xF4, 0x6D}},                            // ctrl_meas: 4x, 4x, forced
		{Addr: addr, W: []byte{0xF3}, R: []byte{0x00}},                 // status: measuring = 0
		{Addr: addr, W: []byte{0xF7}, R: append([]byte(nil), data...)}, // press, temp[, hum]
	}
}

// ADS1115Read is one single-shot conversion (datasheet SBAS444, config
// register): write config, poll it until OS reads 1 (busy polls with OS=0
// first), read the conversion register. cfg is the config written, with
// OS=1; raw is the result.
func ADS1115Read(addr, cfg uint16, busy int, raw int16) []i2ctest.IO {
	ops := []i2ctest.IO{{Addr: addr, W: []byte{0x01, byte(cfg >> 8), byte(cfg)}}}
	for range busy {
		c := cfg &^ 0x8000 // OS = 0: converting
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0x01}, R: []byte{byte(c >> 8), byte(c)}})
	}
	ops = append(ops,
		i2ctest.IO{Addr: addr, W: []byte{0x01}, R: []byte{byte(cfg >> 8), byte(cfg)}},         // OS = 1: done
		i2ctest.IO{Addr: addr, W: []byte{0x00}, R: []byte{byte(uint16(raw) >> 8), byte(raw)}}) // conversion
	return ops
}

// ErrNoAck is what a Flaky bus returns while it is down: what Linux's
// i2c-dev returns when nothing acknowledges the address (ENXIO/EREMOTEIO).
var ErrNoAck = errors.New("devtest: no acknowledge")

// Flaky is an I²C bus that fails every transaction while Down is set, as
// a chip that was unplugged or lost power does, and otherwise passes them
// to Bus.
type Flaky struct {
	i2c.Bus
	Down atomic.Bool
}

func (f *Flaky) Tx(addr uint16, w, r []byte) error {
	if f.Down.Load() {
		return ErrNoAck
	}
	return f.Bus.Tx(addr, w, r)
}

// Close does nothing: the test checks the playback itself.
func (f *Flaky) Close() error { return nil }

// NopCloser makes a bus a BusCloser whose Close does nothing.
type NopCloser struct{ i2c.Bus }

func (NopCloser) Close() error { return nil }

// Message is one publish a Recorder saw.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	At      time.Time
}

// Recorder is a devices.Publisher that records what is published.
type Recorder struct {
	mu   sync.Mutex
	msgs []Message
	err  error
}

// Refuse makes Publish return err (nil: record again), as a broker whose
// queue is full does.
func (r *Recorder) Refuse(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *Recorder) Publish(_ context.Context, topic string, payload []byte, qos byte, _ bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, Message{topic, append([]byte(nil), payload...), qos, time.Now()})
	return nil
}

// Messages returns what was published so far.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}
