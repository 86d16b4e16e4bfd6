package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/broker/brokertest"
)

// TestReloadACLAndRoutes: SIGHUP to the real binary widens a user's ACL and
// adds a forward route. The change takes effect for a client that stays
// connected, and every message queued before and after the reload reaches
// the upstream once it returns.
func TestReloadACLAndRoutes(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the upstream's address, unused until it starts
	if err != nil {
		t.Fatal(err)
	}
	upAddr := ln.Addr().String()
	ln.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	write := func(level, publish, routes string) string {
		path := filepath.Join(dir, "outpost.yaml")
		cfg := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
log: {level: %s}
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth:
  anonymous: false
  users:
    - {username: s1, password_hash: %q, publish: [%s]}
bridges:
  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 10s}
    forward:
%s    reconnect: {min: 50ms, max: 200ms}
`, filepath.Join(dir, "data"), level, hash, publish, upAddr, routes)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := write("info", `"sensors/a/#"`, "      - {from: \"sensors/a/#\", to: \"site/{topic}\", qos: 1}\n")
	p := startOutpost(t, cfg)
	c, err := brokertest.Dial(p.addr, brokertest.Options{Version: 5, ClientID: "s1", Username: "s1", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := uint16(0)
	publish := func(topic string) byte {
		id++
		c.Publish(id, topic, []byte(topic), 1)
		ack, err := c.Read(10 * time.Second)
		if err != nil {
			t.Fatalf("publishing %s: %v", topic, err)
		}
		return ack.ReasonCode
	}
	if code := publish("sensors/a/1"); code != 0 {
		t.Fatalf("allowed publish: 0x%02x", code)
	}
	if code := publish("sensors/b/1"); code != packets.ErrNotAuthorized.Code {
		t.Fatalf("publish outside the ACL: 0x%02x, want 0x87", code)
	}

	write("debug", `"sensors/#"`, "      - {from: \"sensors/a/#\", to: \"site/{topic}\", qos: 1}\n"+
		"      - {from: \"sensors/b/#\", to: \"site/{topic}\", qos: 1}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")
	waitLog(t, p, "applied=auth,bridges.cloud,log.level")

	// The same connection, under the new ACL; sensors/b now routes to cloud.
	if code := publish("sensors/b/2"); code != 0 {
		t.Fatalf("publish the reload allowed: 0x%02x", code)
	}
	if code := publish("sensors/a/2"); code != 0 {
		t.Fatalf("publish still allowed: 0x%02x", code)
	}

	up := bridgetest.NewUpstreamOn(t, upAddr, "site/#")
	up.WaitFor(t, 3, 30*time.Second)
	time.Sleep(200 * time.Millisecond) // anything more would be a wrong delivery
	var topics []string
	for _, pk := range up.Received() {
		topics = append(topics, pk.TopicName)
	}
	slices.Sort(topics)
	if want := []string{"site/sensors/a/1", "site/sensors/a/2", "site/sensors/b/2"}; !slices.Equal(topics, want) {
		t.Fatalf("upstream got %v, want %v", topics, want)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestReloadCredentialsAndDevices: SIGHUP to the real binary points the
// bridge at another password file and adds a wired device. The bridge,
// refused by the upstream with the old password, reconnects with the new one
// and delivers what was queued meanwhile; the new device is polled (this
// machine has no GPIO17, so it fails, is counted and shows as down).
func TestReloadCredentialsAndDevices(t *testing.T) {
	dir := t.TempDir()
	up := bridgetest.NewUpstreamAuth(t, "site/#", "gw", "right")
	for name, pw := range map[string]string{"old.pass": "wrong\n", "new.pass": "right\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	httpAddr := freeAddr(t)
	path := filepath.Join(dir, "outpost.yaml")
	write := func(passFile, devices string) {
		cfg := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth: {anonymous: true}
bridges:
  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 10s, username: gw, password_file: %s}
    forward:
      - {from: "sensors/#", to: "site/{topic}", qos: 1}
    reconnect: {min: 50ms, max: 200ms}
http: {address: "%s"}
%s`, filepath.Join(dir, "data"), up.Addr, passFile, httpAddr, devices)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old.pass", "")
	p := startOutpost(t, path)
	waitLog(t, p, "upstream unavailable; messages stay queued")
	c, err := brokertest.Dial(p.addr, brokertest.Options{Version: 5, ClientID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		c.Publish(uint16(i+1), fmt.Sprintf("sensors/s1/%d", i), []byte("x"), 1)
		if ack, err := c.Read(10 * time.Second); err != nil || ack.ReasonCode != 0 {
			t.Fatalf("publish %d: %v (reason 0x%02x)", i, err, ack.ReasonCode)
		}
	}
	if n := len(up.Received()); n != 0 {
		t.Fatalf("the upstream got %d messages from a bridge with the wrong password", n)
	}
	if _, ok := metric(scrape(t, httpAddr), "outpost_device_up", "device", "door"); ok {
		t.Fatal("a device on /metrics before it is configured")
	}

	write("new.pass", "devices:\n  - {name: door, driver: gpio_in, pin: GPIO17, topic: sensors/gateway/door}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "applied=bridges.cloud,devices")

	got := up.WaitFor(t, 3, 30*time.Second)
	var topics []string
	for _, pk := range got {
		topics = append(topics, pk.TopicName)
	}
	if want := []string{"site/sensors/s1/0", "site/sensors/s1/1", "site/sensors/s1/2"}; !slices.Equal(topics, want) {
		t.Fatalf("upstream got %v, want %v", topics, want)
	}
	waitMetrics(t, httpAddr, 10*time.Second, "the reloaded device failing and counted", func(f map[string]*dto.MetricFamily) bool {
		upv, ok := metric(f, "outpost_device_up", "device", "door")
		errs, _ := metric(f, "outpost_device_errors_total", "device", "door")
		return ok && upv == 0 && errs >= 1
	})
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
