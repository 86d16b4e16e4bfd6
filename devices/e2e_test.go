package devices_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/devices"
	"github.com/outpost-edge/outpost/devices/internal/devtest"
	"github.com/outpost-edge/outpost/storage"
)

// TestEndToEnd: readings of an I²C sensor and a door contact (replayed with
// i2ctest and gpiotest) are published into the real broker, queued on disk
// for the bridge whose route matches, forwarded by the MQTT bridge to an
// upstream broker, and removed from the queue once it acknowledged them;
// the uplink LED lights while the bridge is connected.
func TestEndToEnd(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	cfg, err := configs.Parse("e2e.yaml", []byte(`gateway_id: gw-1
data_dir: .
listeners: [{name: l, address: "127.0.0.1:0"}]
auth: {anonymous: true}
bridges:
  - name: cloud
    mqtt: {url: "tcp://`+up.Addr+`", keepalive: 10s}
    forward: [{from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}]
    batch: {max_messages: 10, max_delay: 10ms}
    reconnect: {min: 20ms, max: 200ms}
devices:
  - {name: enclosure, driver: bme280, i2c: {bus: "1", address: 0x76}, every: 1h, topic: sensors/gateway/enclosure}
  - {name: door, driver: gpio_in, pin: GPIO17, pull: up, debounce: 20ms, topic: sensors/gateway/door}
  - {name: uplink-led, driver: gpio_out, pin: GPIO27, show: "bridge:cloud"}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}

	q, err := storage.Open(filepath.Join(t.TempDir(), "queue.db"), storage.Options{Bridges: cfg.BridgeNames()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cloud, _ := q.Bridge("cloud")
	b, err := broker.New(broker.Options{
		Listeners: []broker.Listener{{Name: "l", Type: "tcp", Address: "127.0.0.1:0"}},
		Queue:     q,
		Route: func(topic string) uint64 {
			if strings.HasPrefix(topic, "sensors/") {
				return cloud.Mask()
			}
			return 0
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.NewMQTT(bridge.Options{Config: cfg.Bridges[0], GatewayID: cfg.GatewayID, Queue: cloud, Local: b})
	if err != nil {
		t.Fatal(err)
	}

	bus := &i2ctest.Playback{Ops: append(devtest.BMx280Init(0x76, 0x60), devtest.BMx280Sense(0x76, true)...), DontPanic: true}
	door := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
	led := &gpiotest.Pin{N: "GPIO27"}
	h := &fakeHost{buses: map[string]i2c.Bus{"1": bus}, pins: map[string]gpio.PinIO{"GPIO17": door, "GPIO27": led}}
	m, err := devices.New(devices.Options{
		Devices:    cfg.Devices,
		Publisher:  b,
		BridgeUp:   func(name string) bool { return name == br.Name() && br.Stats().Up },
		Host:       h.host(),
		ShowPeriod: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Start as cmd/outpost does: bridges, devices, then the broker.
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{}, 3)
	go func() { br.Run(ctx); stopped <- struct{}{} }()
	go func() { m.Run(ctx); stopped <- struct{}{} }()
	go func() { b.Run(ctx); stopped <- struct{}{} }()
	defer func() {
		cancel()
		for range 3 {
			<-stopped
		}
	}()

	got := up.WaitFor(t, 2, 10*time.Second) // the enclosure reading, the door's level at start
	door.EdgesChan <- gpio.Low              // the door closes
	got = up.WaitFor(t, 3, 10*time.Second)

	byTopic := map[string][]devices.Reading{}
	for _, pk := range got {
		var r devices.Reading
		if err := json.Unmarshal(pk.Payload, &r); err != nil {
			t.Fatalf("%s: %s: %v", pk.TopicName, pk.Payload, err)
		}
		byTopic[pk.TopicName] = append(byTopic[pk.TopicName], r)
	}
	enc := byTopic["site/gw-1/sensors/gateway/enclosure"]
	if len(enc) != 1 || enc[0].Device != "enclosure" || enc[0].Values["temperature"] != (devices.Value{Value: 25.08, Unit: "°C"}) ||
		enc[0].Values["pressure"] != (devices.Value{Value: 1006.53, Unit: "hPa"}) || enc[0].Values["humidity"] != (devices.Value{Value: 42.14, Unit: "%RH"}) {
		t.Errorf("enclosure readings upstream: %+v", enc)
	}
	if ts, err := time.Parse(time.RFC3339Nano, enc[0].Time); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("reading time %q: %v", enc[0].Time, err)
	}
	doorGot := byTopic["site/gw-1/sensors/gateway/door"]
	if len(doorGot) != 2 || doorGot[0].Values["level"].Value != 1 || doorGot[1].Values["level"].Value != 0 {
		t.Errorf("door readings upstream: %+v", doorGot)
	}

	// The readings went through the queue (3 appended) and left it once
	// the upstream acknowledged them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := q.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.LastSeq == 3 && st.Messages == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue: last seq %d, %d messages left", st.LastSeq, st.Messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for !led.Read() {
		if time.Now().After(deadline) {
			t.Fatal("the uplink LED is off while the bridge is up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
	for _, s := range m.Stats() {
		if s.Errors != 0 || s.PublishErrors != 0 || s.State != devices.StateOK {
			t.Errorf("device stats %+v", s)
		}
	}
}
