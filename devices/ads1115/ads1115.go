package ads1115

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// Registers and config bits (datasheet, "Register Map").
const (
	regConversion = 0x00
	regConfig     = 0x01

	cfgStart     = 0x8000 // OS: write 1 to start a single conversion; reads 1 when idle
	cfgSingle    = 0x0100 // MODE: single-shot, power down after the conversion
	cfgCompOff   = 0x0003 // COMP_QUE: comparator disabled, ALERT/RDY high-impedance
	cfgMuxSingle = 0x4000 // MUX 1xx: AINx against GND; x in bits 13:12
)

// Ranges are the full-scale ranges of the PGA, by their PGA[11:9] code.
var Ranges = [...]physic.ElectricPotential{
	6144 * physic.MilliVolt, // 000
	4096 * physic.MilliVolt, // 001
	2048 * physic.MilliVolt, // 010 (reset value)
	1024 * physic.MilliVolt, // 011
	512 * physic.MilliVolt,  // 100
	256 * physic.MilliVolt,  // 101
}

// dataRates are the samples per second of DR[7:5] = 0..7.
var dataRates = [...]int{8, 16, 32, 64, 128, 250, 475, 860}

// Addresses are the four addresses the ADDR pin selects.
var Addresses = [...]uint16{0x48, 0x49, 0x4a, 0x4b}

// ErrNotReady means a conversion did not complete in three conversion times.
var ErrNotReady = errors.New("ads1115: conversion did not complete")

// Opts configure a Dev.
type Opts struct {
	// DataRate is the samples per second: 8, 16, 32, 64, 128, 250, 475 or
	// 860. Slower rates average more noise away. Default: 128.
	DataRate int
}

// Dev is an ADS1115 on an I²C bus.
type Dev struct {
	c  i2c.Dev
	dr uint16 // DR bits
	// conv is one conversion time, 1/DR.
	conv time.Duration
}

// New returns the ADS1115 at addr on bus. It does no I/O: the device has
// no id register, so the first Read is what tells whether it answers.
func New(bus i2c.Bus, addr uint16, o *Opts) (*Dev, error) {
	ok := false
	for _, a := range Addresses {
		ok = ok || a == addr
	}
	if !ok {
		return nil, fmt.Errorf("ads1115: address %#x is not one of 0x48 to 0x4b", addr)
	}
	rate := 128
	if o != nil && o.DataRate != 0 {
		rate = o.DataRate
	}
	for i, r := range dataRates {
		if r == rate {
			return &Dev{c: i2c.Dev{Bus: bus, Addr: addr}, dr: uint16(i) << 5, conv: time.Second / time.Duration(r)}, nil
		}
	}
	return nil, fmt.Errorf("ads1115: data rate %d is not one of %v", rate, dataRates)
}

func (d *Dev) String() string { return fmt.Sprintf("ADS1115{%#x}", d.c.Addr) }

// Halt does nothing: in single-shot mode the device powers down after each
// conversion.
func (d *Dev) Halt() error { return nil }

// RangeFor returns the smallest full-scale range that reads v without
// clipping, or the largest range when none does.
func RangeFor(v physic.ElectricPotential) physic.ElectricPotential {
	for i := len(Ranges) - 1; i >= 0; i-- {
		if Ranges[i] >= v {
			return Ranges[i]
		}
	}
	return Ranges[0]
}

// Read converts channel ch (0 to 3, against GND) once with full-scale range
// fs (one of Ranges) and returns the input voltage.
func (d *Dev) Read(ctx context.Context, ch int, fs physic.ElectricPotential) (physic.ElectricPotential, error) {
	if ch < 0 || ch > 3 {
		return 0, fmt.Errorf("ads1115: channel %d is not 0 to 3", ch)
	}
	pga := -1
	for i, r := range Ranges {
		if r == fs {
			pga = i
		}
	}
	if pga < 0 {
		return 0, fmt.Errorf("ads1115: %s is not a full-scale range of the PGA", fs)
	}
	cfg := cfgStart | cfgMuxSingle | uint16(ch)<<12 | uint16(pga)<<9 | cfgSingle | d.dr | cfgCompOff
	if err := d.c.Tx([]byte{regConfig, byte(cfg >> 8), byte(cfg)}, nil); err != nil {
		return 0, fmt.Errorf("ads1115: starting conversion: %w", err)
	}
	// One conversion takes 1/DR (±10%); poll OS from then on, every tenth
	// of a conversion, for up to three conversion times.
	wait := d.conv
	var buf [2]byte
	for waited := time.Duration(0); ; {
		if err := sleep(ctx, wait); err != nil {
			return 0, err
		}
		waited += wait
		if err := d.c.Tx([]byte{regConfig}, buf[:]); err != nil {
			return 0, fmt.Errorf("ads1115: reading config: %w", err)
		}
		if binary.BigEndian.Uint16(buf[:])&cfgStart != 0 {
			break
		}
		if waited >= 3*d.conv {
			return 0, ErrNotReady
		}
		wait = max(d.conv/10, time.Millisecond)
	}
	if err := d.c.Tx([]byte{regConversion}, buf[:]); err != nil {
		return 0, fmt.Errorf("ads1115: reading conversion: %w", err)
	}
	raw := int64(int16(binary.BigEndian.Uint16(buf[:])))
	return physic.ElectricPotential(raw * int64(fs) / 32768), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Scale maps In[0]..In[1] (volts) linearly onto Out[0]..Out[1]; values
// outside In extrapolate, so that a broken 4–20 mA loop (0 mA) reads below
// the range instead of clamping to it.
type Scale struct {
	In  [2]float64
	Out [2]float64
}

// Apply returns v (volts) in the scale's output unit.
func (s Scale) Apply(v float64) float64 {
	if s.In[0] == s.In[1] {
		return math.NaN()
	}
	return s.Out[0] + (v-s.In[0])*(s.Out[1]-s.Out[0])/(s.In[1]-s.In[0])
}
