package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/devices"
	"github.com/outpost-edge/outpost/storage"
)

// TestCheckDeviceErrors: outpost check reports every device problem as
// file:line: message, and runs nothing.
func TestCheckDeviceErrors(t *testing.T) {
	path := writeConfig(t, t.TempDir(), `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x48}, every: 30s}
  - {name: door, driver: gpio_in, pin: gpio17, topic: sensors/gateway/door}
  - {name: led, driver: gpio_out, pin: GPIO27, show: "bridge:lake"}
  - {name: dht, driver: dht22, pin: GPIO4, topic: t}
  - name: adc
    driver: ads1115
    i2c: {address: 0x48}
    topic: sensors/gateway/adc
    channels: [{channel: 5, name: p, scale: {in: [4, 20], out: [0, 10]}, unit: bar}]
  - {name: led2, driver: gpio_out, pin: GPIO27, show: "queue:backlog"}
`)
	code, stdout, stderr := runMain(t, "", "check", "-c", path)
	if code != 1 || stdout != "" {
		t.Fatalf("check: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{
		`outpost.yaml:13: devices[0].i2c.address: 0x48: a bme280 answers only at 0x76, 0x77`,
		`outpost.yaml:13: devices[0].topic: required for driver bme280`,
		`outpost.yaml:14: devices[1].pin: "gpio17" is not a pin name`,
		`outpost.yaml:15: devices[2].show: there is no bridge named "lake"`,
		`outpost.yaml:16: devices[3].driver: "dht22" is not one of: bme280, bmp280, ads1115, gpio_in, gpio_out`,
		`outpost.yaml:21: devices[4].channels[0].channel: 5 is not 0 to 3`,
		`outpost.yaml:21: devices[4].channels[0].scale.in: the ADS1115 reads at most ±6.144 V`,
		`outpost.yaml:22: devices[5].pin: GPIO27 is already the pin of devices[2] (led)`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^\S*outpost\.yaml:\d+: devices\[\d\]\..+$`).FindAllString(stderr, -1)); n != 8 {
		t.Errorf("%d device problems reported, want 8:\n%s", n, stderr)
	}
}

// TestCheckDevicesGood: the devices of a good config are listed.
func TestCheckDevicesGood(t *testing.T) {
	path := writeConfig(t, t.TempDir(), `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x76}, every: 30s, topic: sensors/gateway/enclosure}
  - {name: uplink-led, driver: gpio_out, pin: GPIO27, show: "bridge:cloud"}
`)
	code, stdout, stderr := runMain(t, "", "check", "-c", path)
	if code != 0 || !strings.Contains(stdout, "device:     enclosure (bme280) -> sensors/gateway/enclosure") {
		t.Fatalf("check: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// fakeDeviceHost counts host initialisations and serves gpiotest pins.
func fakeDeviceHost(t *testing.T, inits *atomic.Int32, pins map[string]gpio.PinIO) {
	t.Helper()
	old := deviceHost
	deviceHost = &devices.Host{
		Init:    func() error { inits.Add(1); return nil },
		OpenI2C: func(string) (i2c.BusCloser, error) { return nil, fmt.Errorf("no I²C in this test") },
		Pin: func(name string) (gpio.PinIO, error) {
			if p, ok := pins[name]; ok {
				return p, nil
			}
			return nil, devices.ErrNoPin
		},
	}
	t.Cleanup(func() { deviceHost = old })
}

func deviceTestBroker(t *testing.T) (*broker.Broker, *storage.Queue) {
	t.Helper()
	q, err := storage.Open(filepath.Join(t.TempDir(), "queue.db"), storage.Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cloud, _ := q.Bridge("cloud")
	b, err := broker.New(broker.Options{Listeners: []broker.Listener{{Name: "l", Address: "127.0.0.1:0"}}, Queue: q,
		Route: func(topic string) uint64 {
			if strings.HasPrefix(topic, "sensors/") {
				return cloud.Mask()
			}
			return 0
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, q
}

// TestDevicesNotConfigured: without devices nothing starts, and periph's
// host drivers are never initialised (no /dev/i2c-*, /dev/gpiochip*,
// /sys/class/gpio).
func TestDevicesNotConfigured(t *testing.T) {
	var inits atomic.Int32
	fakeDeviceHost(t, &inits, nil)
	b, q := deviceTestBroker(t)
	cfg := configs.Default()
	ds, err := newDeviceSet(t.Context(), cfg, b, q, func() []bridge.Stats { return nil }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ds.close()
	if inits.Load() != 0 {
		t.Error("the host was initialised without devices")
	}
	if ds.rows() != nil {
		t.Error("the status page gets devices when there are none")
	}
}

// TestDevicesWired: a configured gpio_in publishes through the broker into
// the queue; a gpio_out follows the bridge's state; the status page sees
// both.
func TestDevicesWired(t *testing.T) {
	var inits atomic.Int32
	door := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
	led := &gpiotest.Pin{N: "GPIO27"}
	fakeDeviceHost(t, &inits, map[string]gpio.PinIO{"GPIO17": door, "GPIO27": led})
	cfg, err := configs.Load(writeConfig(t, t.TempDir(), `devices:
  - {name: door, driver: gpio_in, pin: GPIO17, pull: up, topic: sensors/gateway/door}
  - {name: uplink-led, driver: gpio_out, pin: GPIO27, show: "bridge:cloud"}
`))
	if err != nil {
		t.Fatal(err)
	}
	b, q := deviceTestBroker(t)
	var up atomic.Bool
	up.Store(true)
	bridges := func() []bridge.Stats { return []bridge.Stats{{Name: "cloud", Up: up.Load()}} }
	ds, err := newDeviceSet(t.Context(), cfg, b, q, bridges, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.close()
	waitDevice(t, "the door's level in the queue", func() bool { st, _ := q.Stats(); return st.Messages == 1 })
	waitDevice(t, "the uplink LED on", func() bool { return bool(led.Read()) })
	up.Store(false)
	waitDevice(t, "the uplink LED off", func() bool { return !bool(led.Read()) })
	rows := ds.rows()
	if len(rows) != 2 || rows[0].Name != "door" || !rows[0].OK || rows[0].LastReading.IsZero() || rows[1].Driver != "gpio_out" {
		t.Errorf("status rows %+v", rows)
	}
	if inits.Load() != 1 {
		t.Errorf("host initialised %d times, want 1", inits.Load())
	}

	// A reload without the LED: the LED's driver stops (its pin is left
	// low), the door keeps publishing.
	up.Store(true)
	waitDevice(t, "the uplink LED on again", func() bool { return bool(led.Read()) })
	cfg2, err := configs.Load(writeConfig(t, t.TempDir(), `devices:
  - {name: door, driver: gpio_in, pin: GPIO17, pull: up, topic: sensors/gateway/door}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.apply(t.Context(), cfg2); err != nil {
		t.Fatal(err)
	}
	waitDevice(t, "the removed LED's pin low", func() bool { return !bool(led.Read()) })
	if rows := ds.rows(); len(rows) != 1 || rows[0].Name != "door" {
		t.Errorf("status rows after the reload: %+v", rows)
	}
	waitDevice(t, "the door's level published again by the new manager", func() bool { st, _ := q.Stats(); return st.Messages == 2 })
}

func waitDevice(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestDeviceErrorsMetrics runs outpost in this process with a bme280 whose
// chip id is wrong, beside a working gpio_in, and scrapes /metrics: the
// failing device's outpost_device_errors_total rises with each attempt to
// open it and its outpost_device_up is 0, while the door is up with no
// errors; the status page shows why.
func TestDeviceErrorsMetrics(t *testing.T) {
	var inits atomic.Int32
	door := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
	fakeDeviceHost(t, &inits, map[string]gpio.PinIO{"GPIO17": door})
	// Each attempt to open it reads register 0xD0 (id): 0x00, which no
	// Bosch chip has. The test ends long before the tenth attempt.
	bus := &i2ctest.Playback{Ops: slices.Repeat([]i2ctest.IO{{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x00}}}, 10), DontPanic: true}
	deviceHost.OpenI2C = func(name string) (i2c.BusCloser, error) {
		if name != "1" {
			return nil, fmt.Errorf("no I²C bus %q in this test", name)
		}
		return bus, nil
	}
	dir := t.TempDir()
	path := writeWebConfig(t, dir, freeAddr(t))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, `devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x76}, every: 1s, topic: sensors/gateway/enclosure}
  - {name: door, driver: gpio_in, pin: GPIO17, pull: up, topic: sensors/gateway/door}
`...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := runInProcess(t, cfg)
	_, httpAddr := waitAddrs(t, logs)

	// Two errors: the failed open, and the failed retry after the backoff.
	fams := waitMetrics(t, httpAddr, 15*time.Second, "two errors of device enclosure and door up", func(f map[string]*dto.MetricFamily) bool {
		errs, _ := metric(f, "outpost_device_errors_total", "device", "enclosure")
		up, _ := metric(f, "outpost_device_up", "device", "door")
		return errs >= 2 && up == 1
	})
	want(t, fams, 0, "outpost_device_up", "device", "enclosure")
	want(t, fams, 0, "outpost_device_last_reading_timestamp_seconds", "device", "enclosure")
	want(t, fams, 0, "outpost_device_errors_total", "device", "door")
	want(t, fams, 1, "outpost_device_info", "device", "enclosure", "driver", "bme280")
	if f := fams["outpost_device_errors_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("outpost_device_errors_total is not a counter: %v", f)
	}
	code, page := httpGet(t, "http://"+httpAddr+"/")
	if code != 200 || !strings.Contains(page, `data-device="enclosure" data-state="error"`) || !strings.Contains(page, "unexpected chip id 0") {
		t.Errorf("status page (%d) lacks the failing device and its error:\n%s", code, page)
	}
	if !strings.Contains(logs.String(), "device failing; retrying") {
		t.Errorf("the failure is not logged:\n%s", logs)
	}
}
