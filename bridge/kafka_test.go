package bridge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// The Kafka tests run against franz-go's kfake, an in-process cluster on
// loopback. Each bridge section is parsed by the real config loader.

const kafkaGateway = "gw-1"

// kafkaBridgeConfig parses one kafka bridge section; %s in yaml is the
// brokers list.
func kafkaBridgeConfig(t *testing.T, brokers []string, yaml string) configs.Bridge {
	t.Helper()
	yaml = fmt.Sprintf(yaml, `["`+strings.Join(brokers, `", "`)+`"]`)
	cfg, err := configs.Parse("test.yaml", []byte("gateway_id: "+kafkaGateway+"\ndata_dir: .\nlisteners: [{name: l, address: \"127.0.0.1:1883\"}]\nauth: {anonymous: true}\nbridges:\n"+yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Bridges[0]
}

func kafkaQueue(t *testing.T) (*storage.Queue, *storage.Bridge) {
	t.Helper()
	q, err := storage.Open(filepath.Join(t.TempDir(), "queue.db"), storage.Options{Bridges: []string{"lake"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	qb, err := q.Bridge("lake")
	if err != nil {
		t.Fatal(err)
	}
	return q, qb
}

// kafkaTestTime is the received_at of message i: kafkaTestTime + i ms.
var kafkaTestTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// kafkaEnqueue queues the messages msg(i) for i in [from, from+n) and waits
// until they are durable.
func kafkaEnqueue(t *testing.T, q *storage.Queue, from, n int, msg func(i int) *storage.Message) {
	t.Helper()
	var last *storage.Ticket
	for i := from; i < from+n; i++ {
		m := msg(i)
		m.Bridges = 1
		if m.ReceivedAt.IsZero() {
			m.ReceivedAt = kafkaTestTime.Add(time.Duration(i) * time.Millisecond)
		}
		tk, err := q.Enqueue(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		last = tk
	}
	if _, err := last.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// sensorMsg is message i of sensor i%sensors: topic sensors/s<k>/t,
// payload "i", QoS i%3, and a user property on every 1000th.
func sensorMsg(sensors int) func(i int) *storage.Message {
	return func(i int) *storage.Message {
		m := &storage.Message{Topic: fmt.Sprintf("sensors/s%d/t", i%sensors), Payload: []byte(strconv.Itoa(i)), QoS: byte(i % 3)}
		if i%1000 == 0 {
			m.Props = []storage.Property{{Key: "unit", Value: "bar"}}
		}
		return m
	}
}

func runKafka(t *testing.T, o Options) *Kafka {
	t.Helper()
	b, err := NewKafka(o)
	if err != nil {
		t.Fatal(err)
	}
	b.pingEach = 100 * time.Millisecond
	// franz-go refreshes metadata before it retries a retryable produce
	// error, at most every 5s by default.
	b.testOpts = []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func kafkaWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// checkRecords checks the records of sensorMsg messages: headers, key and
// value right, each message at most once (or, with dups, at least once) and,
// per key, first arrivals in queue order on a single partition. It returns
// the seqs seen, by payload, and the number of duplicates.
func checkRecords(t *testing.T, recs []*kgo.Record, sensors int, keyed, dups bool, unordered ...int32) (seqs map[int]uint64, dupCount int) {
	t.Helper()
	seqs = map[int]uint64{}
	lastSeq := map[string]uint64{}
	type arrival struct {
		key string
		seq uint64
	}
	var late []arrival // on the unordered partitions, in arrival order
	partition := map[string]int32{}
	for _, r := range recs {
		i, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("%s/%d@%d: value %q", r.Topic, r.Partition, r.Offset, r.Value)
		}
		m := sensorMsg(sensors)(i)
		get := func(k string) string {
			v, ok := header(r, k)
			if !ok {
				t.Fatalf("message %d: no %s header in %v", i, k, r.Headers)
			}
			return v
		}
		seq, err := strconv.ParseUint(get("seq"), 10, 64)
		if err != nil {
			t.Fatalf("message %d: seq header %q", i, get("seq"))
		}
		want := map[string]string{
			"mqtt_topic":  m.Topic,
			"mqtt_qos":    strconv.Itoa(int(m.QoS)),
			"gateway_id":  kafkaGateway,
			"received_at": kafkaTestTime.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z"),
		}
		if m.Props != nil {
			want["unit"] = "bar"
		}
		for k, v := range want {
			if got := get(k); got != v {
				t.Fatalf("message %d: header %s = %q, want %q", i, k, got, v)
			}
		}
		if len(r.Headers) != len(want)+1 {
			t.Fatalf("message %d: headers %v", i, r.Headers)
		}
		key := m.Topic
		if keyed {
			wantKey := kafkaGateway + "/" + strings.Split(m.Topic, "/")[1]
			if string(r.Key) != wantKey {
				t.Fatalf("message %d: key %q, want %q", i, r.Key, wantKey)
			}
			key = wantKey
			if p, ok := partition[key]; ok && p != r.Partition {
				t.Fatalf("key %s on partitions %d and %d", key, p, r.Partition)
			}
			partition[key] = r.Partition
		}
		if keyed && slices.Contains(unordered, r.Partition) {
			late = append(late, arrival{key, seq})
		}
		if prev, ok := seqs[i]; ok {
			if !dups {
				t.Fatalf("message %d (seq %d) arrived twice", i, seq)
			}
			if prev != seq {
				t.Fatalf("message %d arrived with seq %d and %d", i, prev, seq)
			}
			dupCount++
			continue
		}
		seqs[i] = seq
		if keyed && !slices.Contains(unordered, r.Partition) {
			if seq <= lastSeq[key] {
				t.Fatalf("key %s: seq %d (message %d) arrived for the first time after seq %d", key, seq, i, lastSeq[key])
			}
			lastSeq[key] = seq
		}
	}
	// On an unordered partition the last session sent everything from
	// the durable position on in order: the last arrivals are in order.
	last := map[uint64]int{}
	for j, a := range late {
		last[a.seq] = j
	}
	prev := map[string]uint64{}
	for j, a := range late {
		if last[a.seq] != j {
			continue
		}
		if a.seq <= prev[a.key] {
			t.Fatalf("key %s: seq %d arrived for the last time after seq %d", a.key, a.seq, prev[a.key])
		}
		prev[a.key] = a.seq
	}
	return seqs, dupCount
}

// TestKafkaOutageThenDrain: 100,000 messages queued while the cluster is
// unreachable are produced, once each, when it comes up: in queue order per
// key, each key on one partition, every header right. Up follows the
// cluster. No client telemetry (KIP-714) is sent.
func TestKafkaOutageThenDrain(t *testing.T) {
	const n, sensors = 100_000, 16
	ports := bridgetest.FreePorts(t, 3)
	brokers := bridgetest.Addrs(ports)
	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, sensorMsg(sensors))
	var logs bridgetest.Buffer
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, brokers, `  - name: lake
    kafka: {brokers: %s, compression: lz4}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    batch: {max_messages: 1000, max_bytes: 1MiB, max_delay: 20ms}
    reconnect: {min: 20ms, max: 200ms}
`),
		GatewayID: kafkaGateway, Queue: qb, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	kafkaWait(t, 10*time.Second, "a failed connection attempt", func() bool { return strings.Contains(logs.String(), "upstream unavailable") })
	if s := b.Stats(); s.Up || s.Forwarded != 0 || s.Pending != n {
		t.Fatalf("while the cluster is down: %+v", s)
	}

	c := bridgetest.NewKafka(t, 3, kfake.Ports(ports...), kfake.SeedTopics(6, "telemetry"))
	var telemetry atomic.Int32 // KIP-714 client metrics: a gateway sends none
	for _, k := range []kmsg.Key{kmsg.GetTelemetrySubscriptions, kmsg.PushTelemetry} {
		c.ControlKey(int16(k), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			telemetry.Add(1)
			return nil, nil, false
		})
	}
	kafkaWait(t, 90*time.Second, "the drain", func() bool { s := b.Stats(); return s.Forwarded == n && s.Pending == 0 })
	if n := telemetry.Load(); n != 0 {
		t.Errorf("%d client telemetry requests: the bridge sends franz-go's metrics upstream", n)
	}
	if s := b.Stats(); !s.Up || len(s.Dropped) != 0 || s.LastAck.IsZero() {
		t.Fatalf("after the drain: %+v", s)
	}
	recs := bridgetest.ConsumeAll(t, brokers, "telemetry", n, 60*time.Second)
	seqs, _ := checkRecords(t, recs, sensors, true, false)
	if len(seqs) != n || len(recs) != n {
		t.Fatalf("%d records, %d distinct messages; want %d", len(recs), len(seqs), n)
	}

	c.Close()
	kafkaWait(t, 5*time.Second, "Up to turn false", func() bool { return !b.Stats().Up })
}

// TestKafkaProduceErrors injects produce errors with kfake's control
// functions. A retryable error (NOT_ENOUGH_REPLICAS on whole requests) is
// retried and costs nothing. Permanent ones are counted drops and the rest
// goes on: TOPIC_AUTHORIZATION_FAILED for a denied topic, MESSAGE_TOO_LARGE
// for the batch holding one marked message (the other messages of that
// batch and partition fail with it, and must be resent, not dropped), a
// record over batch.max_bytes, a topic name Kafka refuses, and a topic no
// forward route matches.
func TestKafkaProduceErrors(t *testing.T) {
	const n, sensors = 3000, 4
	const marked, huge, denied, invalid, unrouted = 1501, 700, 900, 1200, 2100
	c := bridgetest.NewKafka(t, 3, kfake.SeedTopics(4, "telemetry", "denied"))
	var retryable, tooLarge atomic.Int32
	var refused sync.Map // partitions of telemetry with a batch refused as too large
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if retryable.Load() == 3 {
			c.DropControl()
			return nil, nil, false
		}
		retryable.Add(1)
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, rt := range kreq.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				if bytes.Contains(rp.Records, []byte("inject-too-large")) {
					tooLarge.Add(1)
					refused.Store(rp.Partition, true)
					c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: rt.Topic, TopicID: rt.TopicID,
						Partitions: []int32{rp.Partition}, Err: kerr.MessageTooLarge})
				}
			}
		}
		return nil, nil, false
	})
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "denied", Err: kerr.TopicAuthorizationFailed, Count: -1})

	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, func(i int) *storage.Message {
		m := sensorMsg(sensors)(i)
		switch {
		case i == marked:
			m.Props = []storage.Property{{Key: "inject", Value: "inject-too-large"}}
		case i == huge:
			m.Payload = bytes.Repeat([]byte{'x'}, 70<<10)
		case i >= denied && i < denied+10:
			m.Topic = "denied/" + m.Topic
		case i == invalid:
			m.Topic = "bad/not a topic"
		case i == unrouted:
			m.Topic = "elsewhere/" + m.Topic
		}
		return m
	})
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka: {brokers: %s}
    forward:
      - {from: "denied/#", topic: "denied", key: "{2}"}
      - {from: "bad/#", topic: "bad.{2}"}
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    batch: {max_messages: 100, max_bytes: 64KiB, max_delay: 5ms}
    reconnect: {min: 20ms, max: 200ms}
`),
		GatewayID: kafkaGateway, Queue: qb, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	kafkaWait(t, 60*time.Second, "the drain", func() bool { return b.Stats().Pending == 0 })
	wantDrops := map[string]uint64{DropTooLarge: 2, DropUnauthorized: 10, DropInvalidTopic: 1, DropNoRoute: 1}
	s := b.Stats()
	// Forwarded counts the resends after the refused batch again.
	if fmt.Sprint(s.Dropped) != fmt.Sprint(wantDrops) || s.Forwarded < n-14 {
		t.Errorf("stats %+v; want at least %d forwarded, drops %v", s, n-14, wantDrops)
	}
	if retryable.Load() != 3 || tooLarge.Load() < 2 {
		t.Errorf("injected: %d retryable, %d too large; want 3 and at least 2 (the batch, then the message alone)", retryable.Load(), tooLarge.Load())
	}
	recs := bridgetest.ConsumeAll(t, c.ListenAddrs(), "telemetry", n-14, 30*time.Second)
	// franz-go has the partition's next batches in flight when one is
	// refused for good, and writes them, renumbered, before the next
	// session resends the refused one's records: only on that partition
	// may a message arrive for the first time after a later one.
	var unordered []int32
	refused.Range(func(p, _ any) bool { unordered = append(unordered, p.(int32)); return true })
	seqs, dups := checkRecords(t, recs, sensors, true, true, unordered...)
	for i := range n {
		_, ok := seqs[i]
		if want := i != marked && i != huge && (i < denied || i >= denied+10) && i != invalid && i != unrouted; ok != want {
			t.Errorf("message %d: arrived %v, want %v", i, ok, want)
		}
	}
	t.Logf("%d records, %d duplicates (resent after the batch refused as too large)", len(recs), dups)
}

// TestKafkaBreakWhileAlone: a batch refused as too large makes the next
// session send its messages one at a time; a record that then fails with
// an error that ends the session (UNKNOWN_SERVER_ERROR, once) must not
// cost the progress made: every message sent alone and acknowledged
// before it is recorded, so none of them is written again, and the
// session's error names the cause.
func TestKafkaBreakWhileAlone(t *testing.T) {
	const n, culprit, breaker = 400, 150, 153
	c := bridgetest.NewKafka(t, 1, kfake.SeedTopics(1, "telemetry"))
	token := regexp.MustCompile(`m-([0-9]+)-`)
	var (
		mu        sync.Mutex
		refused   bool        // the batch holding the culprit was refused
		broke     int         // records in the request that the break failed
		writtenAt map[int]int // message: requests that wrote it since the refusal
	)
	writtenAt = make(map[int]int)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range kreq.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				fault := func(err *kerr.Error) {
					c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: rt.Topic, TopicID: rt.TopicID, Partitions: []int32{rp.Partition}, Err: err})
				}
				switch {
				case bytes.Contains(rp.Records, []byte("inject-too-large")):
					refused = true
					fault(kerr.MessageTooLarge)
				case refused && broke == 0 && bytes.Contains(rp.Records, []byte("inject-break")):
					broke = len(token.FindAll(rp.Records, -1))
					fault(kerr.UnknownServerError)
				case refused:
					for _, m := range token.FindAllSubmatch(rp.Records, -1) {
						i, _ := strconv.Atoi(string(m[1]))
						writtenAt[i]++
					}
				}
			}
		}
		return nil, nil, false
	})
	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, func(i int) *storage.Message {
		m := sensorMsg(4)(i)
		m.Payload = fmt.Appendf(nil, "m-%d-", i)
		switch i {
		case culprit:
			m.Props = []storage.Property{{Key: "inject", Value: "inject-too-large"}}
		case breaker:
			m.Props = []storage.Property{{Key: "inject", Value: "inject-break"}}
		}
		return m
	})
	var logs bridgetest.Buffer
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka: {brokers: %s}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    batch: {max_messages: 100, max_delay: 5ms}
    reconnect: {min: 10ms, max: 50ms}
`),
		GatewayID: kafkaGateway, Queue: qb, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	kafkaWait(t, 60*time.Second, "the drain", func() bool { return b.Stats().Pending == 0 })
	mu.Lock()
	defer mu.Unlock()
	if broke != 1 {
		t.Fatalf("the breaking record's request held %d records, want it sent alone (1); is it in the range sent one at a time?", broke)
	}
	// One topic partition: once its batch is refused, nothing more of that
	// session is written, and the messages before the breaking one are
	// written once, alone, in the next.
	var again []int
	for i := culprit + 1; i < breaker; i++ {
		if writtenAt[i] != 1 {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		t.Errorf("messages sent alone before the break, written since the refusal (want once each): %v (%v)", again, writtenAt)
	}
	if writtenAt[culprit] != 0 || writtenAt[breaker] != 1 {
		t.Errorf("written since the refusal: the culprit %d times (want 0, dropped), the breaking message %d (want 1, resent)", writtenAt[culprit], writtenAt[breaker])
	}
	if !strings.Contains(logs.String(), "UNKNOWN_SERVER_ERROR") {
		t.Errorf("the log does not name the error that broke the session:\n%s", logs.String())
	}
	if s := b.Stats(); s.Dropped[DropTooLarge] != 1 {
		t.Errorf("stats %+v; want the culprit dropped as too large", s)
	}
}

// TestKafkaSCRAM: SCRAM-SHA-512 against a cluster with one user. The
// password file is read at each connection: with a wrong password nothing
// is forwarded and Up stays false; once the file holds the right one, the
// next attempt gets in and the queue drains.
func TestKafkaSCRAM(t *testing.T) {
	const n = 200
	c := bridgetest.NewKafka(t, 2, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "gw", "s3cret"), kfake.SeedTopics(2, "telemetry"))
	pwFile := filepath.Join(t.TempDir(), "kafka.pass")
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, sensorMsg(4))
	var logs bridgetest.Buffer
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka:
      brokers: %s
      sasl: {mechanism: SCRAM-SHA-512, username: gw, password_file: `+pwFile+`}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    reconnect: {min: 20ms, max: 100ms}
`),
		GatewayID: kafkaGateway, Queue: qb, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	kafkaWait(t, 10*time.Second, "a refused login", func() bool { return strings.Count(logs.String(), "upstream unavailable") >= 2 })
	if s := b.Stats(); s.Up || s.Forwarded != 0 {
		t.Fatalf("with a wrong password: %+v", s)
	}
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kafkaWait(t, 30*time.Second, "the drain", func() bool { return b.Stats().Forwarded == n })
	recs := bridgetest.ConsumeAll(t, c.ListenAddrs(), "telemetry", n, 30*time.Second,
		kgo.SASL(scram.Auth{User: "gw", Pass: "s3cret"}.AsSha512Mechanism()))
	checkRecords(t, recs, 4, true, false)
}

// TestKafkaKcat: kcat, a librdkafka consumer, reads what the bridge
// produced, and its view of keys, headers and values is checked.
func TestKafkaKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	const n = 50
	c := bridgetest.NewKafka(t, 1, kfake.SeedTopics(1, "telemetry"))
	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, sensorMsg(3))
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka: {brokers: %s, compression: zstd}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
`),
		GatewayID: kafkaGateway, Queue: qb,
	})
	kafkaWait(t, 30*time.Second, "the drain", func() bool { return b.Stats().Forwarded == n })

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", c.ListenAddrs()[0], "-t", "telemetry", "-o", "beginning", "-e", "-q",
		"-f", "%k\t%h\t%s\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("kcat printed %d lines, want %d:\n%s", len(lines), n, out)
	}
	for i, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("kcat line %q", line)
		}
		m := sensorMsg(3)(i)
		wantKey := kafkaGateway + "/" + strings.Split(m.Topic, "/")[1]
		wantHeaders := fmt.Sprintf("mqtt_topic=%s,mqtt_qos=%d,gateway_id=%s,seq=%d,received_at=%s",
			m.Topic, m.QoS, kafkaGateway, i+1, kafkaTestTime.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000Z"))
		if m.Props != nil {
			wantHeaders += ",unit=bar"
		}
		if f[0] != wantKey || f[1] != wantHeaders || f[2] != strconv.Itoa(i) {
			t.Fatalf("kcat line %d:\n got  %q\n want %q", i, line, wantKey+"\t"+wantHeaders+"\t"+strconv.Itoa(i))
		}
	}
}

// TestKafkaClusterLostMidDrain: the cluster goes away mid-drain. Up turns
// false; the records in flight are retried, not failed; when a cluster
// answers on the same addresses again the drain finishes, in order per key.
// Stopping the bridge while records are in flight for an unreachable
// cluster returns promptly.
func TestKafkaClusterLostMidDrain(t *testing.T) {
	const n, sensors = 20000, 4
	ports := bridgetest.FreePorts(t, 2)
	brokers := bridgetest.Addrs(ports)
	c := bridgetest.NewKafka(t, 2, kfake.Ports(ports...), kfake.SeedTopics(2, "telemetry"))
	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, sensorMsg(sensors))
	b, err := NewKafka(Options{
		Config: kafkaBridgeConfig(t, brokers, `  - name: lake
    kafka: {brokers: %s}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    batch: {max_messages: 100, max_delay: 5ms}
    reconnect: {min: 20ms, max: 100ms}
`),
		GatewayID: kafkaGateway, Queue: qb,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.pingEach = 100 * time.Millisecond
	b.testOpts = []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	kafkaWait(t, 30*time.Second, "part of the drain", func() bool { return b.Stats().Forwarded >= 3000 })
	c.Close()
	kafkaWait(t, 5*time.Second, "Up to turn false", func() bool { return !b.Stats().Up })
	lost := b.Stats().Forwarded // acknowledged by the cluster that went away
	time.Sleep(300 * time.Millisecond)
	if s := b.Stats(); s.Pending == 0 || len(s.Dropped) != 0 {
		t.Fatalf("while the cluster is away: %+v", s)
	}

	c = bridgetest.NewKafka(t, 2, kfake.Ports(ports...), kfake.SeedTopics(2, "telemetry"))
	kafkaWait(t, 60*time.Second, "the drain", func() bool { return b.Stats().Pending == 0 })
	if s := b.Stats(); !s.Up || len(s.Dropped) != 0 {
		t.Fatalf("after the drain: %+v", s)
	}
	recs := bridgetest.ConsumeAll(t, brokers, "telemetry", n-int(lost), 30*time.Second)
	seqs, _ := checkRecords(t, recs, sensors, true, true)
	for i := int(lost); i < n; i++ {
		if _, ok := seqs[i]; !ok {
			t.Fatalf("message %d, after the %d the first cluster acknowledged, is missing", i, lost)
		}
	}

	// Records in flight for an unreachable cluster do not hold up a stop.
	kafkaEnqueue(t, q, n, 500, sensorMsg(sensors))
	c.Close()
	kafkaWait(t, 5*time.Second, "Up to turn false", func() bool { return !b.Stats().Up })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context was canceled")
	}
}

// TestStamperMatchesFormat: received_at as the stamper writes it is
// time.Format's RFC 3339 in UTC with milliseconds, for times in order
// (many to a second, the second changing), out of order, before 1970 and
// in other zones.
func TestStamperMatchesFormat(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000Z07:00"
	var st stamper
	check := func(tm time.Time) {
		t.Helper()
		got := string(st.append([]byte("x"), tm))
		if want := "x" + tm.UTC().Format(layout); got != want {
			t.Fatalf("%v: %q, want %q", tm, got, want)
		}
	}
	start := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	for i := range 5000 {
		check(start.Add(time.Duration(i) * 997 * time.Microsecond))
	}
	zone := time.FixedZone("", -7*3600-1800)
	for _, tm := range []time.Time{
		time.UnixMilli(-1), time.UnixMilli(-999), time.UnixMilli(-1000), time.UnixMilli(-1001), time.UnixMilli(0),
		time.Date(1969, 12, 31, 23, 59, 59, 999e6, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 1e6, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), start.In(zone), start.Add(-time.Hour), start,
	} {
		check(tm)
	}
	for i := range 2000 {
		check(time.UnixMilli(int64(i) * 7919 * 1e5 % (1 << 45)).In(zone))
	}
}

// TestKafkaEmptyPayload: a message with an empty payload (an MQTT client
// clearing a retained message, say) becomes a record with an empty value,
// not a null one, which a compacted topic takes as a tombstone; also when
// the bridge reuses the buffers of an earlier read for it.
func TestKafkaEmptyPayload(t *testing.T) {
	const n = 50
	c := bridgetest.NewKafka(t, 1, kfake.SeedTopics(1, "telemetry"))
	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, func(i int) *storage.Message {
		m := &storage.Message{Topic: "sensors/s1/t", Payload: []byte("v" + strconv.Itoa(i)), QoS: 1}
		if i%3 == 0 {
			m.Payload = nil
		}
		return m
	})
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka: {brokers: %s}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{2}"}
    batch: {max_messages: 4, max_delay: 5ms}
`),
		GatewayID: kafkaGateway, Queue: qb,
	})
	kafkaWait(t, 30*time.Second, "the drain", func() bool { s := b.Stats(); return s.Forwarded == n && s.Pending == 0 })
	recs := bridgetest.ConsumeAll(t, c.ListenAddrs(), "telemetry", n, 30*time.Second)
	for i, r := range recs {
		want := "v" + strconv.Itoa(i)
		if i%3 == 0 {
			want = ""
		}
		if string(r.Value) != want || r.Value == nil {
			t.Fatalf("record %d: value %q (null: %v), want %q, not null", i, r.Value, r.Value == nil, want)
		}
	}
}
