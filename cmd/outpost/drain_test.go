package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
)

// writeUpstreamConfig is writeConfig with the bridge pointed at upstream
// and the JSON envelope on, so that the test sees gateway_id and seq.
func writeUpstreamConfig(t *testing.T, dir, upstream string) string {
	t.Helper()
	cfg := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth: {anonymous: true}
bridges:
  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 2s, envelope: json}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}
    batch: {max_messages: 200, max_delay: 20ms}
    reconnect: {min: 50ms, max: 300ms}
`, filepath.Join(dir, "data"), upstream)
	path := filepath.Join(dir, "outpost.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type envelopeMsg struct {
	GatewayID string          `json:"gateway_id"`
	Seq       uint64          `json:"seq"`
	Topic     string          `json:"topic"`
	Payload   json.RawMessage `json:"payload"` // numbers are valid JSON: kept as they are
}

// TestCrashDuringDrain: a backlog builds while the upstream is away; the
// upstream returns; outpost is SIGKILLed mid-drain and restarted. Every
// message arrives at least once; a message arriving for the first time has
// a higher seq than every earlier first arrival (order per gateway held);
// duplicates are only resends after the cut.
func TestCrashDuringDrain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the upstream's address, unused until it starts
	if err != nil {
		t.Fatal(err)
	}
	upAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := writeUpstreamConfig(t, dir, upAddr)
	p := startOutpost(t, cfg)

	const n = 20000
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("sensor"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	toks := make([]paho.Token, 0, n)
	for i := range n {
		toks = append(toks, c.Publish(fmt.Sprintf("sensors/s%d/t", i%4), 1, false, fmt.Sprint(i)))
		if i%100 == 99 {
			toks[i-99].Wait()
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	c.Disconnect(0)

	up := bridgetest.NewUpstreamOn(t, upAddr, "site/#") // the uplink returns
	up.WaitFor(t, 3000, 60*time.Second)
	p.kill() // mid-drain
	killedAt := len(up.Received())
	startOutpost(t, cfg)

	deadline := time.Now().Add(120 * time.Second)
	for {
		first, maxFirst, dups := map[uint64]bool{}, uint64(0), 0
		for i, pk := range up.Received() {
			var e envelopeMsg
			if err := json.Unmarshal(pk.Payload, &e); err != nil {
				t.Fatalf("message %d: not a JSON envelope: %s", i, pk.Payload)
			}
			if e.GatewayID != "test-gw" || pk.TopicName != "site/test-gw/"+e.Topic {
				t.Fatalf("message %d: gateway %q on %s for %s", i, e.GatewayID, pk.TopicName, e.Topic)
			}
			if first[e.Seq] {
				dups++
				continue
			}
			if e.Seq < maxFirst {
				t.Fatalf("message %d: seq %d arrived for the first time after seq %d", i, e.Seq, maxFirst)
			}
			if fmt.Sprint(e.Seq-1) != string(e.Payload) {
				t.Fatalf("seq %d carries payload %s: seq must follow publish order", e.Seq, e.Payload)
			}
			first[e.Seq], maxFirst = true, e.Seq
		}
		if len(first) == n {
			t.Logf("%d messages delivered, killed after %d arrivals, %d duplicates around the cut", n, killedAt, dups)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages arrived upstream", len(first), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
