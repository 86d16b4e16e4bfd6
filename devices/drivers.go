package devices

import (
	"context"
	"fmt"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/devices/ads1115"
	"github.com/outpost-edge/outpost/devices/bmx280"
	"github.com/outpost-edge/outpost/devices/gpioin"
	"github.com/outpost-edge/outpost/devices/gpioout"
)

type pinIO = gpio.PinIO

// driver returns the function that runs d.
func (m *Manager) driver(d *device) (func(context.Context), error) {
	c := d.cfg
	switch c.Driver {
	case "bme280", "bmp280":
		if c.I2C == nil {
			return nil, fmt.Errorf("driver %s needs i2c", c.Driver)
		}
		model := bmx280.Model(strings.ToUpper(c.Driver))
		return func(ctx context.Context) {
			d.poll(ctx, func(ctx context.Context) (sensor, error) { return m.openBMx280(c, model) })
		}, nil
	case "ads1115":
		if c.I2C == nil {
			return nil, fmt.Errorf("driver ads1115 needs i2c")
		}
		return func(ctx context.Context) {
			d.poll(ctx, func(ctx context.Context) (sensor, error) { return m.openADS1115(c) })
		}, nil
	case "gpio_in":
		edge, err := parseEdge(c.Edge)
		if err != nil {
			return nil, err
		}
		pull, err := parsePull(c.Pull)
		if err != nil {
			return nil, err
		}
		o := gpioin.Opts{Pull: pull, Edge: edge, Debounce: c.Debounce}
		if edge == gpio.NoEdge {
			return func(ctx context.Context) {
				d.poll(ctx, func(ctx context.Context) (sensor, error) { return m.openLevel(c, o) })
			}, nil
		}
		return func(ctx context.Context) { d.watch(ctx, o) }, nil
	case "gpio_out":
		state, err := m.showState(c.Show)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { d.show(ctx, state) }, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownDriver, c.Driver)
}

func parseEdge(s string) (gpio.Edge, error) {
	switch s {
	case "", "both":
		return gpio.BothEdges, nil
	case "rising":
		return gpio.RisingEdge, nil
	case "falling":
		return gpio.FallingEdge, nil
	case "none":
		return gpio.NoEdge, nil
	}
	return gpio.NoEdge, fmt.Errorf("edge %q is not rising, falling, both or none", s)
}

func parsePull(s string) (gpio.Pull, error) {
	switch s {
	case "", "none":
		return gpio.Float, nil
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	}
	return gpio.PullNoChange, fmt.Errorf("pull %q is not up, down or none", s)
}

// bmxSensor is an opened BME280 or BMP280.
type bmxSensor struct {
	dev   *bmx280.Dev
	topic string
}

func (m *Manager) openBMx280(c configs.Device, model bmx280.Model) (sensor, error) {
	bus, err := m.bus(c.I2C.Bus)
	if err != nil {
		return nil, err
	}
	dev, err := bmx280.NewI2C(bus, c.I2C.Address, model, nil)
	if err != nil {
		return nil, err
	}
	return &bmxSensor{dev: dev, topic: c.Topic}, nil
}

func (s *bmxSensor) String() string { return s.dev.String() }
func (s *bmxSensor) close()         { s.dev.Halt() }

func (s *bmxSensor) read(ctx context.Context) ([]sample, error) {
	var e physic.Env
	if err := s.dev.SenseContext(ctx, &e); err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.dev, err)
	}
	v := map[string]Value{
		"temperature": {round(float64(e.Temperature-physic.ZeroCelsius)/float64(physic.Celsius), 2), "°C"},
		"pressure":    {round(float64(e.Pressure)/float64(100*physic.Pascal), 2), "hPa"},
	}
	if s.dev.Model() == bmx280.BME280 {
		v["humidity"] = Value{round(float64(e.Humidity)/float64(physic.PercentRH), 2), "%RH"}
	}
	return []sample{{topic: s.topic, time: time.Now(), values: v}}, nil
}

// adcSensor is an opened ADS1115 and its channels.
type adcSensor struct {
	dev   *ads1115.Dev
	chans []adcChannel
}

type adcChannel struct {
	configs.ADCChannel
	topic string
	fs    physic.ElectricPotential
}

func (m *Manager) openADS1115(c configs.Device) (sensor, error) {
	bus, err := m.bus(c.I2C.Bus)
	if err != nil {
		return nil, err
	}
	dev, err := ads1115.New(bus, c.I2C.Address, nil)
	if err != nil {
		return nil, err
	}
	s := &adcSensor{dev: dev}
	for _, ch := range c.Channels {
		// The PGA range: the smallest that holds the scale's input range,
		// or ±4.096 V (for a 3.3 V supply) without a scale.
		top := 4.096
		if ch.Scale != nil {
			top = max(abs(ch.Scale.In[0]), abs(ch.Scale.In[1]))
		}
		fs := ads1115.RangeFor(physic.ElectricPotential(top * float64(physic.Volt)))
		s.chans = append(s.chans, adcChannel{ADCChannel: ch, topic: topicJoin(c.Topic, ch.Name), fs: fs})
	}
	return s, nil
}

func abs(f float64) float64 { return max(f, -f) }

func (s *adcSensor) String() string { return s.dev.String() }
func (s *adcSensor) close()         {}

func (s *adcSensor) read(ctx context.Context) ([]sample, error) {
	out := make([]sample, 0, len(s.chans))
	for _, ch := range s.chans {
		v, err := s.dev.Read(ctx, ch.Channel, ch.fs)
		if err != nil {
			return nil, fmt.Errorf("reading channel %d (%s): %w", ch.Channel, ch.Name, err)
		}
		volts := round(float64(v)/float64(physic.Volt), 6)
		vals := map[string]Value{ch.Name: {volts, "V"}}
		if sc := ch.Scale; sc != nil {
			scaled := ads1115.Scale{In: sc.In, Out: sc.Out}.Apply(float64(v) / float64(physic.Volt))
			vals[ch.Name] = Value{round(scaled, 6), ch.Unit}
			vals["input_voltage"] = Value{volts, "V"}
		}
		out = append(out, sample{topic: ch.topic, time: time.Now(), values: vals, key: ch.Name})
	}
	return out, nil
}

// levelSensor is a gpio_in read on a schedule (edge: none).
type levelSensor struct {
	in    *gpioin.Input
	topic string
}

func (m *Manager) openLevel(c configs.Device, o gpioin.Opts) (sensor, error) {
	p, err := m.pin(c.Pin)
	if err != nil {
		return nil, err
	}
	in, err := gpioin.New(p, o)
	if err != nil {
		return nil, err
	}
	return &levelSensor{in: in, topic: c.Topic}, nil
}

func (s *levelSensor) String() string { return s.in.String() }
func (s *levelSensor) close()         {}

func (s *levelSensor) read(context.Context) ([]sample, error) {
	return []sample{levelSample(s.topic, s.in.Read())}, nil
}

func levelSample(topic string, l gpio.Level) sample {
	v := 0.0
	if l {
		v = 1
	}
	return sample{topic: topic, time: time.Now(), values: map[string]Value{"level": {Value: v}}}
}

// watch runs a gpio_in with edge detection: it publishes the level once
// the pin is configured, then every debounced change.
func (d *device) watch(ctx context.Context, o gpioin.Opts) {
	for ctx.Err() == nil {
		p, err := d.m.pin(d.cfg.Pin)
		var in *gpioin.Input
		if err == nil {
			in, err = gpioin.New(p, o)
		}
		if err != nil {
			sleep(ctx, d.fail(err))
			continue
		}
		d.ok(in.String())
		d.publish(ctx, levelSample(d.cfg.Topic, in.Last()))
		for {
			l, err := in.Next(ctx)
			if err != nil {
				return // only ctx ends Next
			}
			d.publish(ctx, levelSample(d.cfg.Topic, l))
		}
	}
}

// showState returns the function gpio_out polls for show.
func (m *Manager) showState(show string) (func() gpioout.Mode, error) {
	if name, ok := strings.CutPrefix(show, "bridge:"); ok {
		return func() gpioout.Mode {
			if m.o.BridgeUp != nil && m.o.BridgeUp(name) {
				return gpioout.On
			}
			return gpioout.Off
		}, nil
	}
	if show != "queue:backlog" {
		return nil, fmt.Errorf(`show %q is neither "bridge:<name>" nor "queue:backlog"`, show)
	}
	var (
		seen       bool
		dropped    uint64
		blinkUntil time.Time
	)
	return func() gpioout.Mode {
		if m.o.Queue == nil {
			return gpioout.Off
		}
		q := m.o.Queue()
		now := time.Now()
		if seen && q.Dropped > dropped {
			blinkUntil = now.Add(m.o.DropBlink)
		}
		seen, dropped = true, q.Dropped
		switch {
		case now.Before(blinkUntil):
			return gpioout.Blink
		case q.Messages > 0:
			return gpioout.On
		}
		return gpioout.Off
	}, nil
}

// show runs a gpio_out until ctx is done.
func (d *device) show(ctx context.Context, state func() gpioout.Mode) {
	for ctx.Err() == nil {
		p, err := d.m.pin(d.cfg.Pin)
		var out *gpioout.Output
		if err == nil {
			out, err = gpioout.New(p)
		}
		if err == nil {
			d.ok(out.String())
			if err = out.Run(ctx, d.m.o.ShowPeriod, state); err == nil {
				return
			}
		}
		sleep(ctx, d.fail(err))
	}
}
