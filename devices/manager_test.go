package devices_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/devices"
	"github.com/outpost-edge/outpost/devices/internal/devtest"
)

// parseDevices returns the devices section of a config, loaded as outpost
// loads it (defaults, validation).
func parseDevices(t *testing.T, yaml string) []configs.Device {
	t.Helper()
	cfg, err := configs.Parse("devices.yaml", []byte("gateway_id: gw\ndata_dir: .\nlisteners: [{name: l, address: \"127.0.0.1:0\"}]\nauth: {anonymous: true}\n"+yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Devices
}

// fakeHost is a Host backed by i2ctest and gpiotest; it counts Init calls.
type fakeHost struct {
	inits atomic.Int32
	buses map[string]i2c.Bus
	pins  map[string]gpio.PinIO
}

func (h *fakeHost) host() *devices.Host {
	return &devices.Host{
		Init: func() error { h.inits.Add(1); return nil },
		OpenI2C: func(name string) (i2c.BusCloser, error) {
			if b, ok := h.buses[name]; ok {
				return devtest.NopCloser{Bus: b}, nil
			}
			return nil, fmt.Errorf("no bus %q", name)
		},
		Pin: func(name string) (gpio.PinIO, error) {
			if p, ok := h.pins[name]; ok {
				return p, nil
			}
			return nil, fmt.Errorf("%w: %q", devices.ErrNoPin, name)
		},
	}
}

// start runs a manager until the test ends (or stop is called), and
// returns it with a stop that waits for Run to return.
func start(t *testing.T, o devices.Options) (*devices.Manager, func()) {
	t.Helper()
	m, err := devices.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return m, stop
}

func decode(t *testing.T, payload []byte) devices.Reading {
	t.Helper()
	var r devices.Reading
	if err := json.Unmarshal(payload, &r); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	return r
}

// TestNoDevicesNoHost: a gateway without devices never initialises the
// host drivers, so nothing under /dev or /sys is opened.
func TestNoDevicesNoHost(t *testing.T) {
	h := &fakeHost{}
	m, err := devices.New(devices.Options{Host: h.host()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil { // returns at once
		t.Fatal(err)
	}
	if n := h.inits.Load(); n != 0 {
		t.Errorf("host initialised %d times with no devices", n)
	}
	if s := m.Stats(); len(s) != 0 {
		t.Errorf("Stats = %v", s)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		o           devices.Options
		errIs       error
		errContains string
	}{
		{"unknown driver", devices.Options{Devices: []configs.Device{{Name: "x", Driver: "dht22"}}, Publisher: &devtest.Recorder{}}, devices.ErrUnknownDriver, `device x: devices: unknown driver "dht22"`},
		{"no publisher", devices.Options{Devices: []configs.Device{{Name: "door", Driver: "gpio_in", Pin: "GPIO17", Topic: "t"}}}, devices.ErrNoPublisher, "device door"},
		{"bad show", devices.Options{Devices: []configs.Device{{Name: "led", Driver: "gpio_out", Pin: "GPIO27", Show: "uplink"}}}, nil, `show "uplink"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := devices.New(tc.o)
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

// TestPollSchedule: a BME280 polled every 30s is read at 0, 30s, 60s from
// the start, exactly, and each reading is published as the documented JSON.
func TestPollSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ops := devtest.BMx280Init(0x76, 0x60)
		for range 3 {
			ops = append(ops, devtest.BMx280Sense(0x76, true)...)
		}
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		h := &fakeHost{buses: map[string]i2c.Bus{"1": bus}}
		rec := &devtest.Recorder{}
		m, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x76}, every: 30s, topic: sensors/gateway/enclosure}
`)})
		t0 := time.Now()
		time.Sleep(70 * time.Second)
		stop()

		msgs := rec.Messages()
		// Each forced measurement takes 26ms (4x oversampling of three values).
		want := []time.Duration{26 * time.Millisecond, 30026 * time.Millisecond, 60026 * time.Millisecond}
		if len(msgs) != len(want) {
			t.Fatalf("%d messages, want %d", len(msgs), len(want))
		}
		for i, msg := range msgs {
			if d := msg.At.Sub(t0); d != want[i] {
				t.Errorf("reading %d at %s, want %s", i, d, want[i])
			}
			if msg.Topic != "sensors/gateway/enclosure" || msg.QoS != 1 {
				t.Errorf("reading %d on %q qos %d", i, msg.Topic, msg.QoS)
			}
		}
		wantJSON := fmt.Sprintf(`{"device":"enclosure","time":"%s","values":{"humidity":{"value":42.14,"unit":"%%RH"},"pressure":{"value":1006.53,"unit":"hPa"},"temperature":{"value":25.08,"unit":"°C"}}}`,
			t0.Add(26*time.Millisecond).UTC().Format(devices.TimeFormat))
		if got := string(msgs[0].Payload); got != wantJSON {
			t.Errorf("payload\n got %s\nwant %s", got, wantJSON)
		}
		if err := bus.Close(); err != nil {
			t.Error(err)
		}
		if n := h.inits.Load(); n != 1 {
			t.Errorf("host initialised %d times, want 1", n)
		}
		s := m.Stats()[0]
		if s.State != devices.StateStopped || s.Errors != 0 || s.Published != 3 || !s.LastReading.Equal(t0.Add(60026*time.Millisecond)) {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestChipStopsAnswering: the chip stops answering mid-run; each failed
// attempt is counted and retried after a doubling backoff, and when the
// chip answers again it is initialised anew (calibration re-read) and the
// schedule goes on at its next slot.
func TestChipStopsAnswering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ops := devtest.BMx280Init(0x77, 0x58)
		ops = append(ops, devtest.BMx280Sense(0x77, false)...) // t=0
		ops = append(ops, devtest.BMx280Init(0x77, 0x58)...)   // t=33s: back, initialised again
		ops = append(ops, devtest.BMx280Sense(0x77, false)...) // t=33s
		ops = append(ops, devtest.BMx280Sense(0x77, false)...) // t=60s, the next slot
		play := &i2ctest.Playback{Ops: ops, DontPanic: true}
		bus := &devtest.Flaky{Bus: play}
		h := &fakeHost{buses: map[string]i2c.Bus{"": bus}}
		rec := &devtest.Recorder{}
		m, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - {name: baro, driver: bmp280, i2c: {address: 0x77}, every: 30s, topic: sensors/gateway/baro}
`)})
		t0 := time.Now()
		time.Sleep(29 * time.Second)
		bus.Down.Store(true) // unplugged
		// 30s: the read fails (error 1), retry in 1s; 31s: the chip id read
		// fails (error 2), retry in 2s.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		s := m.Stats()[0]
		if s.State != devices.StateFailing || s.Errors != 2 || !strings.Contains(s.LastError, "no acknowledge") {
			t.Errorf("while unplugged: %+v", s)
		}
		bus.Down.Store(false) // 32s: plugged back in
		time.Sleep(30 * time.Second)
		stop()

		var got []time.Duration
		for _, msg := range rec.Messages() {
			got = append(got, msg.At.Sub(t0))
			if r := decode(t, msg.Payload); len(r.Values) != 2 || r.Values["pressure"].Unit != "hPa" {
				t.Errorf("bmp280 reading %s", msg.Payload)
			}
		}
		// periph's bmxx80 waits 26ms for a BMP280 too (its delay counts the
		// humidity oversampling that the BMP280 lacks).
		want := []time.Duration{26 * time.Millisecond, 33026 * time.Millisecond, 60026 * time.Millisecond}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("readings at %v, want %v", got, want)
		}
		if err := play.Close(); err != nil {
			t.Error(err)
		}
		if s := m.Stats()[0]; s.Errors != 2 || s.Published != 3 {
			t.Errorf("after recovery: %+v", s)
		}
	})
}

// TestOnlyOnChange: an ADS1115 channel with a 4–20 mA scale (1–5 V → 0–10
// bar) and a 0.1 bar deadband publishes only readings that moved more than
// 0.1 bar from the last one published.
func TestOnlyOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const cfg = 0xC183 // OS, AIN0, PGA 000 (±6.144 V: the scale reaches 5 V), single-shot, 128 SPS, comparator off
		raws := []int16{
			16000, // 3.000 V = 5.0 bar: first reading, published
			16100, // 5.047 bar: within 0.1 of 5.0, held
			16300, // 5.141 bar: 0.14 from 5.0, published
			16250, // 5.117 bar: held
			15000, // 4.531 bar: published
		}
		var ops []i2ctest.IO
		for _, r := range raws {
			ops = append(ops, devtest.ADS1115Read(0x48, cfg, 0, r)...)
		}
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		h := &fakeHost{buses: map[string]i2c.Bus{"1": bus}}
		rec := &devtest.Recorder{}
		_, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - name: pump-adc
    driver: ads1115
    i2c: {bus: "1", address: 0x48}
    every: 10s
    topic: sensors/gateway/pump
    only_on_change: true
    deadband: 0.1
    channels:
      - {channel: 0, name: line-pressure, scale: {in: [1, 5], out: [0, 10]}, unit: bar}
`)})
		time.Sleep(45 * time.Second)
		stop()
		var got []string
		for _, msg := range rec.Messages() {
			if msg.Topic != "sensors/gateway/pump/line-pressure" {
				t.Errorf("topic %q", msg.Topic)
			}
			r := decode(t, msg.Payload)
			got = append(got, fmt.Sprintf("%g %s (%g %s)", r.Values["line-pressure"].Value, r.Values["line-pressure"].Unit,
				r.Values["input_voltage"].Value, r.Values["input_voltage"].Unit))
		}
		want := []string{"5 bar (3 V)", "5.140625 bar (3.05625 V)", "4.53125 bar (2.8125 V)"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("published %q, want %q", got, want)
		}
		if err := bus.Close(); err != nil {
			t.Error(err)
		}
	})
}

// TestGPIOIn: a door contact with edge detection publishes its level at
// start and on each debounced change; one polled with only_on_change
// publishes changes only.
func TestGPIOIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		door := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
		float := &gpiotest.Pin{N: "GPIO22"}
		h := &fakeHost{pins: map[string]gpio.PinIO{"GPIO17": door, "GPIO22": float}}
		rec := &devtest.Recorder{}
		_, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - {name: door, driver: gpio_in, pin: GPIO17, pull: up, edge: both, debounce: 50ms, topic: sensors/gateway/door}
  - {name: float, driver: gpio_in, pin: GPIO22, edge: none, every: 1s, only_on_change: true, topic: sensors/gateway/float}
`)})
		t0 := time.Now()
		time.Sleep(time.Second)
		door.EdgesChan <- gpio.Low // the door closes, bouncing
		time.Sleep(3 * time.Millisecond)
		door.EdgesChan <- gpio.High
		time.Sleep(3 * time.Millisecond)
		door.EdgesChan <- gpio.Low
		float.Out(gpio.High) // the float switch rises at 1.006s
		time.Sleep(2 * time.Second)
		stop()

		var got []string
		for _, msg := range rec.Messages() {
			r := decode(t, msg.Payload)
			got = append(got, fmt.Sprintf("%s %s=%g", msg.At.Sub(t0), r.Device, r.Values["level"].Value))
		}
		slices.Sort(got) // the two devices publish at 0s in either order
		want := []string{
			"0s door=1",     // pulled up: open
			"0s float=0",    // first poll
			"1.056s door=0", // 50ms after the last bounce
			"2s float=1",    // the next poll; 3s is the same level, held
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("published %q, want %q", got, want)
		}
	})
}

// TestGPIOOut: gpio_out shows a bridge's link, and the queue's backlog,
// blinking while drops rise.
func TestGPIOOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		uplink := &gpiotest.Pin{N: "GPIO27"}
		backlog := &gpiotest.Pin{N: "GPIO23"}
		h := &fakeHost{pins: map[string]gpio.PinIO{"GPIO27": uplink, "GPIO23": backlog}}
		var up atomic.Bool
		var queued, dropped atomic.Uint64
		dropped.Store(7) // drops from before the start do not blink
		_, stop := start(t, devices.Options{Host: h.host(),
			BridgeUp:   func(name string) bool { return name == "cloud" && up.Load() },
			Queue:      func() devices.QueueState { return devices.QueueState{Messages: queued.Load(), Dropped: dropped.Load()} },
			ShowPeriod: 100 * time.Millisecond, DropBlink: time.Second,
			Devices: parseDevices(t, `bridges:
  - {name: cloud, mqtt: {url: "tcp://localhost:1883"}, forward: [{from: "#"}]}
devices:
  - {name: uplink-led, driver: gpio_out, pin: GPIO27, show: "bridge:cloud"}
  - {name: backlog-led, driver: gpio_out, pin: GPIO23, show: "queue:backlog"}
`)})
		step := func() { time.Sleep(100 * time.Millisecond); synctest.Wait() }
		synctest.Wait()
		if uplink.Read() || backlog.Read() {
			t.Fatal("a LED is on at start")
		}
		up.Store(true)
		queued.Store(5)
		step()
		if !uplink.Read() || !backlog.Read() {
			t.Error("bridge up and a backlog, but a LED is off")
		}
		dropped.Add(1)
		var blink []gpio.Level
		for range 4 {
			step()
			blink = append(blink, backlog.Read())
		}
		if fmt.Sprint(blink) != "[Low High Low High]" {
			t.Errorf("while dropping the backlog LED went %v, want it blinking", blink)
		}
		time.Sleep(time.Second) // no more drops: steady again
		synctest.Wait()
		if !backlog.Read() {
			t.Error("backlog LED off after the drops stopped, with a backlog")
		}
		up.Store(false)
		queued.Store(0)
		step()
		if uplink.Read() || backlog.Read() {
			t.Error("bridge down and no backlog, but a LED is on")
		}
		up.Store(true)
		step()
		if !uplink.Read() {
			t.Error("bridge up again, but the uplink LED is off")
		}
		stop()
		if uplink.Read() {
			t.Error("the uplink LED stayed on after the manager stopped")
		}
	})
}

// TestPublishRefused: a reading the broker refuses is counted, and the
// on-change filter still publishes it at the next chance.
func TestPublishRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := &gpiotest.Pin{N: "GPIO5"}
		h := &fakeHost{pins: map[string]gpio.PinIO{"GPIO5": pin}}
		rec := &devtest.Recorder{}
		rec.Refuse(errors.New("queue full"))
		m, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - {name: level, driver: gpio_in, pin: GPIO5, edge: none, every: 1s, only_on_change: true, topic: t}
`)})
		time.Sleep(1500 * time.Millisecond) // polls at 0 and 1s, both refused
		rec.Refuse(nil)
		time.Sleep(time.Second) // 2s: published, since nothing was yet
		stop()
		s := m.Stats()[0]
		if s.PublishErrors != 2 || s.Published != 1 || s.Errors != 0 {
			t.Errorf("stats %+v", s)
		}
		if n := len(rec.Messages()); n != 1 {
			t.Errorf("%d messages published, want 1", n)
		}
	})
}

// TestMissingHardware: a bus or pin that does not exist is a failing
// device, retried, and the others go on.
func TestMissingHardware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := &gpiotest.Pin{N: "GPIO5"}
		h := &fakeHost{pins: map[string]gpio.PinIO{"GPIO5": pin}}
		rec := &devtest.Recorder{}
		m, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, RetryMax: 4 * time.Second, Devices: parseDevices(t, `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "3", address: 0x76}, topic: a}
  - {name: led, driver: gpio_out, pin: GPIO6, show: "queue:backlog"}
  - {name: level, driver: gpio_in, pin: GPIO5, edge: none, every: 10s, topic: b}
`)})
		// Attempts at 0, 1, 3, 7, 11, 15, 19s: backoff 1, 2, 4, 4, 4, 4s.
		time.Sleep(19500 * time.Millisecond)
		stop()
		st := m.Stats()
		if st[0].Errors != 7 || !strings.Contains(st[0].LastError, `no bus "3"`) {
			t.Errorf("bme280 on a missing bus: %+v", st[0])
		}
		if st[1].Errors != 7 || !strings.Contains(st[1].LastError, "no such GPIO pin") {
			t.Errorf("gpio_out on a missing pin: %+v", st[1])
		}
		if st[2].Errors != 0 || st[2].Published != 2 {
			t.Errorf("the working device: %+v", st[2])
		}
	})
}

// TestWrongChip: a BMP280 on a board configured as bme280 (chip id 0x58,
// not 0x60) is a failing device: nothing is published, each attempt is
// counted and retried after the backoff, and the error names both chips.
func TestWrongChip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ops []i2ctest.IO
		for range 3 { // attempts at 0, 1s and 3s (backoff 1s, then 2s)
			ops = append(ops, devtest.BMx280Init(0x76, 0x58)...)
		}
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		h := &fakeHost{buses: map[string]i2c.Bus{"1": bus}}
		rec := &devtest.Recorder{}
		m, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x76}, every: 30s, topic: sensors/gateway/enclosure}
`)})
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		s := m.Stats()[0]
		if s.State != devices.StateFailing || s.Errors != 3 || s.Published != 0 ||
			!strings.Contains(s.LastError, "wrong chip: found a BMP280 at 0x76, configured as BME280") {
			t.Errorf("stats %+v", s)
		}
		stop()
		if n := len(rec.Messages()); n != 0 {
			t.Errorf("%d readings published from the wrong chip", n)
		}
		if err := bus.Close(); err != nil { // exactly three attempts
			t.Error(err)
		}
	})
}

// TestPollOverrun: the schedule is deadline-based: a read that takes longer
// than every (a BME280's 26ms measurement, every 20ms) skips the slot it
// overran, so reads start at 0, 40ms and 80ms instead of bunching up.
func TestPollOverrun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ops := devtest.BMx280Init(0x76, 0x60)
		for range 3 {
			ops = append(ops, devtest.BMx280Sense(0x76, true)...)
		}
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		h := &fakeHost{buses: map[string]i2c.Bus{"1": bus}}
		rec := &devtest.Recorder{}
		_, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x76}, every: 20ms, topic: sensors/gateway/enclosure}
`)})
		t0 := time.Now()
		time.Sleep(110 * time.Millisecond) // the next read would start at 120ms
		stop()
		var got []time.Duration
		for _, msg := range rec.Messages() {
			got = append(got, msg.At.Sub(t0))
		}
		want := []time.Duration{26 * time.Millisecond, 66 * time.Millisecond, 106 * time.Millisecond}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("readings at %v, want %v", got, want)
		}
		if err := bus.Close(); err != nil {
			t.Error(err)
		}
	})
}

// TestDeadbandInChannelUnit: an ads1115 channel's deadband is in the
// channel's unit: its input_voltage moving by more than deadband volts
// while the scaled value moves less than deadband publishes nothing.
func TestDeadbandInChannelUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const cfg = 0xC183 // OS, AIN0, ±6.144 V, single-shot, 128 SPS, comparator off
		raws := []int16{
			16000, // 3.0000 V = 0.5 m: first reading, published
			16600, // 3.1125 V = 0.528125 m: 0.11 V but 0.028 m from the last, held
			18200, // 3.4125 V = 0.603125 m: 0.103 m from 0.5, published
		}
		var ops []i2ctest.IO
		for _, r := range raws {
			ops = append(ops, devtest.ADS1115Read(0x48, cfg, 0, r)...)
		}
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		h := &fakeHost{buses: map[string]i2c.Bus{"1": bus}}
		rec := &devtest.Recorder{}
		_, stop := start(t, devices.Options{Host: h.host(), Publisher: rec, Devices: parseDevices(t, `devices:
  - name: tank-adc
    driver: ads1115
    i2c: {bus: "1", address: 0x48}
    every: 10s
    topic: sensors/gateway/tank
    only_on_change: true
    deadband: 0.1
    channels:
      - {channel: 0, name: level, scale: {in: [1, 5], out: [0, 1]}, unit: m}
`)})
		time.Sleep(25 * time.Second)
		stop()
		var got []string
		for _, msg := range rec.Messages() {
			r := decode(t, msg.Payload)
			got = append(got, fmt.Sprintf("%g %s", r.Values["level"].Value, r.Values["level"].Unit))
		}
		if want := []string{"0.5 m", "0.603125 m"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("published %q, want %q", got, want)
		}
		if err := bus.Close(); err != nil {
			t.Error(err)
		}
	})
}
