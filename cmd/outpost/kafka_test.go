package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
)

// writeKafkaConfig writes a config with one tcp listener on a free loopback
// port, data in dir, and one Kafka bridge "lake" forwarding sensors/# to
// topic telemetry, keyed by sensor. kafka is added to the kafka section
// (", compression: zstd"), bridge to the bridge (indented lines).
func writeKafkaConfig(t testing.TB, dir string, brokers []string, kafka, bridge string) string {
	t.Helper()
	cfg := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth: {anonymous: true}
bridges:
  - name: lake
    kafka: {brokers: ["%s"]%s}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    reconnect: {min: 50ms, max: 300ms}
%s`, filepath.Join(dir, "data"), strings.Join(brokers, `", "`), kafka, bridge)
	path := filepath.Join(dir, "outpost.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// consumer reads a topic from the start, in the background, until the test
// ends.
type consumer struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func consume(t *testing.T, brokers []string, topic string) *consumer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			recs := cl.PollFetches(ctx).Records()
			c.mu.Lock()
			c.recs = append(c.recs, recs...)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return c
}

func (c *consumer) records() []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*kgo.Record(nil), c.recs...)
}

// TestKafkaCrashDuringDrain: a backlog builds while the Kafka cluster is
// unreachable; the cluster comes up; outpost is SIGKILLed mid-drain and
// restarted. Every message is produced at least once; per key, a message
// arriving for the first time has a higher seq than every earlier first
// arrival, and seq follows publish order (per gateway, strictly increasing).
func TestKafkaCrashDuringDrain(t *testing.T) {
	ports := bridgetest.FreePorts(t, 3) // the cluster's, unused until it starts
	brokers := bridgetest.Addrs(ports)
	dir := t.TempDir()
	cfg := writeKafkaConfig(t, dir, brokers, "", "    batch: {max_messages: 200, max_delay: 20ms}\n")
	p := startOutpost(t, cfg)

	const n, sensors = 20000, 4
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("sensor"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	toks := make([]paho.Token, 0, n)
	for i := range n {
		toks = append(toks, c.Publish(fmt.Sprintf("sensors/s%d/t", i%sensors), 1, false, strconv.Itoa(i)))
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

	bridgetest.NewKafka(t, 3, kfake.Ports(ports...), kfake.SeedTopics(3, "telemetry")) // the uplink returns
	got := consume(t, brokers, "telemetry")
	deadline := time.Now().Add(60 * time.Second)
	for len(got.records()) < 3000 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records produced in 60s\n%s", len(got.records()), p.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill() // mid-drain
	killedAt := len(got.records())
	startOutpost(t, cfg)

	deadline = time.Now().Add(120 * time.Second)
	for {
		first, dups := map[uint64]bool{}, 0
		maxFirst := map[string]uint64{}
		for _, r := range got.records() {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			seq, err := strconv.ParseUint(h["seq"], 10, 64)
			if err != nil || h["gateway_id"] != "test-gw" || !strings.HasPrefix(h["mqtt_topic"], "sensors/") {
				t.Fatalf("record %s/%d@%d: headers %v", r.Topic, r.Partition, r.Offset, h)
			}
			key := string(r.Key)
			if want := "test-gw/" + strings.Split(h["mqtt_topic"], "/")[1]; key != want {
				t.Fatalf("seq %d: key %q, want %q", seq, key, want)
			}
			if first[seq] {
				dups++
				continue
			}
			if seq < maxFirst[key] {
				t.Fatalf("key %s: seq %d arrived for the first time after seq %d", key, seq, maxFirst[key])
			}
			if strconv.FormatUint(seq-1, 10) != string(r.Value) {
				t.Fatalf("seq %d carries payload %s: seq must follow publish order", seq, r.Value)
			}
			first[seq], maxFirst[key] = true, seq
		}
		if len(first) == n {
			t.Logf("%d messages produced, killed after %d records, %d duplicates around the cut", n, killedAt, dups)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages produced", len(first), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
