package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// bridgeConfig parses one bridge section with the real config loader.
func bridgeConfig(t *testing.T, yaml string) configs.Bridge {
	t.Helper()
	cfg, err := configs.Parse("test.yaml", []byte("gateway_id: gw-1\ndata_dir: .\nlisteners: [{name: l, address: \"127.0.0.1:1883\"}]\nauth: {anonymous: true}\nbridges:\n"+yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Bridges[0]
}

func openQueue(t *testing.T) (*storage.Queue, *storage.Bridge) {
	t.Helper()
	q, err := storage.Open(filepath.Join(t.TempDir(), "queue.db"), storage.Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	qb, _ := q.Bridge("cloud")
	return q, qb
}

// enqueue puts n messages on topics sensors/s<i%routes>/t, payload "i".
func enqueue(t *testing.T, q *storage.Queue, mask uint64, from, n, routes int) {
	t.Helper()
	var last *storage.Ticket
	for i := from; i < from+n; i++ {
		tk, err := q.Enqueue(t.Context(), &storage.Message{Topic: fmt.Sprintf("sensors/s%d/t", i%routes), Payload: []byte(strconv.Itoa(i)), QoS: 1, Bridges: mask})
		if err != nil {
			t.Fatal(err)
		}
		last = tk
	}
	if _, err := last.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func runBridge(t *testing.T, o Options) *MQTT {
	t.Helper()
	b, err := NewMQTT(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkOrder fails unless, per topic, payloads arrive in increasing order;
// it returns how many payloads arrived more than once.
func checkOrder(t *testing.T, got []packets.Packet) (dups int) {
	t.Helper()
	last := map[string]int{}
	seen := map[string]bool{}
	for _, pk := range got {
		v, _ := strconv.Atoi(string(pk.Payload))
		if seen[string(pk.Payload)] {
			dups++
			continue
		}
		seen[string(pk.Payload)] = true
		if prev, ok := last[pk.TopicName]; ok && v < prev {
			t.Fatalf("%s: %d after %d: out of order", pk.TopicName, v, prev)
		}
		last[pk.TopicName] = v
	}
	return dups
}

// cloudBridge is the bridge most tests use. Its keepalive is long enough
// that a slow -race run never mistakes a busy link for a dead one (that
// reconnect would resend, and these tests count duplicates).
const cloudBridge = `  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 10s}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}
    batch: {max_messages: 500, max_delay: 20ms}
    reconnect: {min: 20ms, max: 200ms}
`

// TestOutageThenDrain: 100,000 messages queued while the uplink is down all
// arrive when it returns, exactly once and in order per route.
func TestOutageThenDrain(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	px := bridgetest.NewProxy(t, up.Addr)
	px.SetDown(true)
	q, qb := openQueue(t)
	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(cloudBridge, px.Addr())), GatewayID: "gw-1", Queue: qb})

	const n = 100_000
	enqueue(t, q, qb.Mask(), 0, n, 10)
	time.Sleep(300 * time.Millisecond) // several reconnect attempts fail
	if s := b.Stats(); s.Up || s.Pending != n || len(up.Received()) != 0 {
		t.Fatalf("during the outage: %+v, upstream got %d", s, len(up.Received()))
	}

	px.SetDown(false)
	got := up.WaitFor(t, n, 10*time.Minute) // completeness, not speed: -race on a busy machine is slow
	if dups := checkOrder(t, got); dups != 0 || len(got) != n {
		t.Fatalf("%d received with %d duplicates; want exactly %d once each", len(got), dups, n)
	}
	if got[0].TopicName != "site/gw-1/sensors/s0/t" {
		t.Fatalf("topic mapped to %q", got[0].TopicName)
	}
	waitUntil(t, 5*time.Second, "position to reach the end", func() bool { return qb.Position() == n && qb.Pending() == 0 })
	if st, _ := q.Stats(); st.Messages != 0 {
		t.Fatalf("%d messages still in the queue after upstream acked all", st.Messages)
	}
	s := b.Stats()
	if !s.Up || s.Forwarded != n || s.LastAck.IsZero() {
		t.Fatalf("stats after drain: %+v", s)
	}
}

// TestCutsDuringDrain: the link is blackholed and reset while a backlog
// drains; every message arrives, in order per route, duplicates only from
// resends after a cut.
func TestCutsDuringDrain(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	px := bridgetest.NewProxy(t, up.Addr)
	q, qb := openQueue(t)
	const n = 30_000
	enqueue(t, q, qb.Mask(), 0, n, 7)
	// A 2s keepalive, so that the blackhole is noticed quickly.
	fast := strings.Replace(cloudBridge, "keepalive: 10s", "keepalive: 2s", 1)
	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(fast, px.Addr())), GatewayID: "gw-1", Queue: qb})

	waitUntil(t, 30*time.Second, "drain to start", func() bool { return len(up.Received()) > 1000 })
	px.Blackhole.Store(true) // packets vanish, the connection stays
	cut := time.Now()
	// Up must turn false within one keepalive (with a second of slack for
	// a loaded test machine).
	waitUntil(t, 10*time.Second, "bridge down after blackhole", func() bool { return !b.Stats().Up })
	if d := time.Since(cut); d > 3*time.Second {
		t.Fatalf("a blackholed link was reported down after %v; keepalive is 2s", d)
	} else {
		t.Logf("blackhole noticed after %v (keepalive 2s)", d.Round(time.Millisecond))
	}
	px.Blackhole.Store(false)
	px.Reset()
	waitUntil(t, 30*time.Second, "more progress", func() bool { return qb.Position() > 5000 })
	px.SetDown(true)
	enqueue(t, q, qb.Mask(), n, 1000, 7) // live traffic during the cut
	time.Sleep(200 * time.Millisecond)
	px.SetDown(false)

	waitUntil(t, 5*time.Minute, "every message acknowledged", func() bool { return qb.Pending() == 0 })
	got := up.Received()
	dups := checkOrder(t, got)
	seen := map[string]bool{}
	for _, pk := range got {
		seen[string(pk.Payload)] = true
	}
	for i := range n + 1000 {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("message %d never arrived upstream", i)
		}
	}
	t.Logf("%d messages, %d received, %d duplicates from resends after cuts", n+1000, len(got), dups)
}

func TestEnvelopeAndStatus(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	q, qb := openQueue(t)
	cfg := bridgeConfig(t, fmt.Sprintf(`  - name: cloud
    mqtt: {url: "tcp://%s", envelope: json, status_topic: "site/gw-1/status"}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{2}", qos: 1}
`, up.Addr))
	runBridge(t, Options{Config: cfg, GatewayID: "gw-1", Queue: qb})
	for _, p := range []string{`{"t":21.5}`, "\x00\x01raw"} {
		tk, _ := q.Enqueue(t.Context(), &storage.Message{Topic: "sensors/pump-1/t", Payload: []byte(p), QoS: 1, Bridges: qb.Mask()})
		tk.Wait(t.Context())
	}
	got := up.WaitFor(t, 3, 10*time.Second)
	if got[0].TopicName != "site/gw-1/status" || string(got[0].Payload) != "online" || !got[0].FixedHeader.Retain {
		t.Fatalf("first message %s %q retain=%v, want retained online status", got[0].TopicName, got[0].Payload, got[0].FixedHeader.Retain)
	}
	var e1, e2 map[string]any
	json.Unmarshal(got[1].Payload, &e1)
	json.Unmarshal(got[2].Payload, &e2)
	if got[1].TopicName != "site/gw-1/pump-1" || e1["gateway_id"] != "gw-1" || e1["seq"] != 1.0 || e1["topic"] != "sensors/pump-1/t" ||
		fmt.Sprint(e1["payload"]) != "map[t:21.5]" || !strings.HasSuffix(fmt.Sprint(e1["received_at"]), "Z") {
		t.Fatalf("json envelope: %s %s", got[1].TopicName, got[1].Payload)
	}
	if e2["payload_b64"] != "AAFyYXc=" || e2["seq"] != 2.0 {
		t.Fatalf("binary payload envelope: %s", got[2].Payload)
	}
}

func TestBackoff(t *testing.T) {
	b := &Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for i := range 8 {
		d := b.Next()
		ceil := min(100*time.Millisecond<<i, time.Second)
		if d < ceil/2 || d > ceil {
			t.Fatalf("attempt %d: %v outside [%v, %v]", i, d, ceil/2, ceil)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
}

// TestWrongCredentials: the upstream refuses the login; the bridge says so,
// keeps retrying with backoff and drops nothing; once the password file is
// corrected it connects (the file is read at every attempt) and drains.
func TestWrongCredentials(t *testing.T) {
	up := bridgetest.NewUpstreamAuth(t, "site/#", "gw", "right")
	pw := filepath.Join(t.TempDir(), "cloud.pass")
	os.WriteFile(pw, []byte("wrong\n"), 0o600)
	q, qb := openQueue(t)
	enqueue(t, q, qb.Mask(), 0, 100, 3)
	var logs bridgetest.Buffer
	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(`  - name: cloud
    mqtt: {url: "tcp://%s", username: gw, password_file: %q}
    forward: [{from: "sensors/#", to: "site/{topic}"}]
    reconnect: {min: 20ms, max: 100ms}
`, up.Addr, pw)), GatewayID: "gw-1", Queue: qb, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	waitUntil(t, 10*time.Second, "a refused login in the log", func() bool {
		return strings.Contains(logs.String(), "not Authorized") || strings.Contains(logs.String(), "bad user name or password")
	})
	time.Sleep(300 * time.Millisecond)
	if s := b.Stats(); s.Up || s.Pending != 100 || len(up.Received()) != 0 || !strings.Contains(s.LastError, "not Authorized") {
		t.Fatalf("with a wrong password: %+v", s)
	}
	os.WriteFile(pw, []byte("right\n"), 0o600)
	up.WaitFor(t, 100, 30*time.Second)
	waitUntil(t, 10*time.Second, "queue drained", func() bool { return qb.Pending() == 0 })
}

// TestUpstreamRestart: the upstream broker goes away mid-drain and comes
// back on the same address; everything arrives, in order per route.
func TestUpstreamRestart(t *testing.T) {
	first := bridgetest.NewUpstream(t, "site/#")
	q, qb := openQueue(t)
	const n = 20000
	enqueue(t, q, qb.Mask(), 0, n, 5)
	runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(cloudBridge, first.Addr)), GatewayID: "gw-1", Queue: qb})
	first.WaitFor(t, 2000, time.Minute)
	first.Close()
	before := first.Received()
	second := bridgetest.NewUpstreamOn(t, first.Addr, "site/#")
	waitUntil(t, 5*time.Minute, "every message acknowledged", func() bool { return qb.Pending() == 0 })
	all := append(before, second.Received()...)
	dups := checkOrder(t, all)
	if len(all)-dups != n {
		t.Fatalf("%d distinct messages arrived, want %d", len(all)-dups, n)
	}
	t.Logf("%d before the restart, %d after, %d duplicates", len(before), len(second.Received()), dups)
}

// TestNoRouteCounted: a queued message that no forward route matches any
// more (the config changed) is dropped and counted, never silently.
func TestNoRouteCounted(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	q, qb := openQueue(t)
	for _, topic := range []string{"legacy/x", "sensors/a"} {
		tk, _ := q.Enqueue(t.Context(), &storage.Message{Topic: topic, Payload: []byte("p"), QoS: 1, Bridges: qb.Mask()})
		if _, err := tk.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(cloudBridge, up.Addr)), GatewayID: "gw-1", Queue: qb})
	got := up.WaitFor(t, 1, 10*time.Second)
	waitUntil(t, 10*time.Second, "queue drained", func() bool { return qb.Pending() == 0 })
	if got[0].TopicName != "site/gw-1/sensors/a" || len(up.Received()) != 1 {
		t.Fatalf("upstream got %d messages, first on %s", len(up.Received()), got[0].TopicName)
	}
	if s := b.Stats(); s.Dropped[DropNoRoute] != 1 || s.Forwarded != 1 {
		t.Fatalf("stats %+v: want 1 forwarded, 1 dropped for no route", s)
	}
}

// TestUpstreamRefusesTopic: the upstream's ACL denies one topic and, as an
// MQTT 3.1.1 broker does, closes the connection on each publish to it. The
// bridge finds the one message it is refusing, drops it after three refusals
// in a row (counted, logged), and everything else arrives, in order.
func TestUpstreamRefusesTopic(t *testing.T) {
	up := bridgetest.StartUpstream(t, bridgetest.UpstreamOptions{Filter: "site/#", Hook: &bridgetest.DenyPublish{Filter: "site/gw-1/sensors/forbidden/#"}})
	q, qb := openQueue(t)
	forbidden := func(i int) {
		tk, err := q.Enqueue(t.Context(), &storage.Message{Topic: "sensors/forbidden/x", Payload: []byte(fmt.Sprint("forbidden-", i)), QoS: 1, Bridges: qb.Mask()})
		if err != nil {
			t.Fatal(err)
		}
		tk.Wait(t.Context())
	}
	enqueue(t, q, qb.Mask(), 0, 1500, 3)
	forbidden(1)
	enqueue(t, q, qb.Mask(), 1500, 1000, 3)
	forbidden(2)
	enqueue(t, q, qb.Mask(), 2500, 500, 3)
	var logs bridgetest.Buffer
	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(cloudBridge, up.Addr)), GatewayID: "gw-1", Queue: qb,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	waitUntil(t, time.Minute, "every message acknowledged or dropped", func() bool { return qb.Pending() == 0 })
	got := up.Received()
	dups := checkOrder(t, got)
	seen := map[string]bool{}
	for _, pk := range got {
		if strings.HasPrefix(string(pk.Payload), "forbidden") {
			t.Fatalf("the upstream accepted %s on %s", pk.Payload, pk.TopicName)
		}
		seen[string(pk.Payload)] = true
	}
	for i := range 3000 {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("message %d, on a topic the upstream accepts, never arrived", i)
		}
	}
	if s := b.Stats(); s.Dropped[DropRefused] != 2 || s.Forwarded < 3000 {
		t.Fatalf("stats %+v: want 2 dropped as %s", s, DropRefused)
	}
	if n := strings.Count(logs.String(), "reason="+DropRefused); n != 2 {
		t.Fatalf("%d drop warnings for %s in the log, want 2:\n%s", n, DropRefused, logs.String())
	}
	t.Logf("%d received, %d duplicates from resends after the refusals", len(got), dups)
}

// TestStatusOfflineOnStop: a bridge that stops cleanly (shutdown) sends no
// last will, so it says offline itself, retained.
func TestStatusOfflineOnStop(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	_, qb := openQueue(t)
	b, err := NewMQTT(Options{Config: bridgeConfig(t, fmt.Sprintf(`  - name: cloud
    mqtt: {url: "tcp://%s", status_topic: "site/gw-1/status"}
    forward: [{from: "sensors/#", to: "site/{topic}"}]
`, up.Addr)), GatewayID: "gw-1", Queue: qb})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	up.WaitFor(t, 1, 10*time.Second)
	cancel()
	<-done
	got := up.WaitFor(t, 2, 10*time.Second)
	if string(got[0].Payload) != "online" || string(got[1].Payload) != "offline" || !got[1].FixedHeader.Retain {
		t.Fatalf("status messages %q then %q (retain %v), want online then a retained offline", got[0].Payload, got[1].Payload, got[1].FixedHeader.Retain)
	}
}
