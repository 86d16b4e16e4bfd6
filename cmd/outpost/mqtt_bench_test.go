package main

import (
	"bufio"
	"context"
	be "encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/storage"
)

// The MQTT bridge benchmarks use the bridge's default batch (max_messages
// 500, max_delay 50ms): the forwarder keeps two batches in flight, and the
// baseline client gets the same window.
const (
	benchBatch     = 500
	benchWindow    = 2 * benchBatch
	benchMaxDelay  = 50 * time.Millisecond
	benchLocal     = "sensors/bench/t"
	benchUpTopic   = "site/test-gw/" + benchLocal // the route's mapping of benchLocal
	benchPayload   = 64
	latencyRate    = 1000 // msgs/s
	latencyWarmup  = 200  // messages sent before the measured ones, not counted
	latencyMaxMsgs = 10000
)

// benchMessages is OUTPOST_BENCH_MESSAGES, default 1,000,000.
func benchMessages(b *testing.B) int {
	n := 1_000_000
	if s := os.Getenv("OUTPOST_BENCH_MESSAGES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("OUTPOST_BENCH_MESSAGES=%q: want a positive count", s)
		}
		n = v
	}
	return n
}

// BenchmarkMQTTDrain drains OUTPOST_BENCH_MESSAGES (default 1,000,000) queued
// 64-byte QoS 1 messages with the real binary to an in-process mochi broker
// and to the mosquitto binary, both on loopback. For each upstream, in this
// order:
//
//   - baseline: a plain paho client in this process publishes the same
//     messages at QoS 1, from memory, to the same upstream topic, with the
//     bridge's window (2×batch.max_messages tokens outstanding);
//   - idle: the binary starts on an empty queue, its bridge connects, and
//     after 1 s its VmRSS is read;
//   - drain: the queue file is filled offline (storage.Enqueue), the binary
//     starts on it and forwards the backlog; VmRSS is sampled every 50 ms and
//     VmHWM (which includes opening the queue) is read at the end.
//
// Rates are from the first message arriving upstream to the last, for the
// baseline and the drain alike. The benchmark fails unless every message
// arrives and the queue is empty afterwards; speed is reported, not judged.
func BenchmarkMQTTDrain(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status")
	}
	n := benchMessages(b)
	b.Run("mochi", func(b *testing.B) {
		for range b.N {
			c := &arrivals{}
			addr := startMochiUpstream(b, func(packets.Packet) { c.add() })
			benchDrain(b, addr, c, n)
		}
	})
	b.Run("mosquitto", func(b *testing.B) {
		bin := mosquittoBinary()
		if bin == "" {
			b.Skip("mosquitto not installed (apt-get install mosquitto)")
		}
		for range b.N {
			c := &arrivals{}
			addr := startMosquittoUpstream(b, bin, c)
			benchDrain(b, addr, c, n)
		}
	})
}

func benchDrain(b *testing.B, upstream string, c *arrivals, n int) {
	payload := []byte(strings.Repeat("x", benchPayload))

	// Baseline: paho from memory, same window, same topic and payload.
	c.reset()
	baseline := publishBaseline(b, upstream, benchUpTopic, n, payload)
	c.wait(b, n, "baseline")
	baseRate := c.rate()
	if got := c.n.Load(); got != int64(n) {
		b.Fatalf("baseline: %d messages arrived upstream for %d published", got, n)
	}

	// Idle: empty queue, bridge connected, settled ("cold": nothing
	// forwarded yet). Then "warm": a gateway that has forwarded live
	// traffic and gone quiet, the state a field gateway idles in, with the
	// forwarding code paged in; the drain is compared with that.
	dir := b.TempDir()
	cfg := writeBenchConfig(b, dir, upstream, "")
	p := startOutpost(b, cfg)
	waitBridgeUp(b, p)
	time.Sleep(time.Second)
	cold := readRSS(b, p)
	c.reset()
	publishBaseline(b, p.addr, benchLocal, 2*benchWindow, payload)
	c.wait(b, 2*benchWindow, "warm-up")
	time.Sleep(2 * time.Second)
	idle := readRSS(b, p)
	stopClean(b, p)
	b.Logf("idle RSS MiB (anon+file): cold %.1f (%.1f+%.1f), warm %.1f (%.1f+%.1f)", cold.rss, cold.anon, cold.file, idle.rss, idle.anon, idle.file)
	b.ReportMetric(cold.rss, "cold-idle-rss-MiB")

	// The backlog, written offline into the queue file the binary opens.
	qpath := filepath.Join(dir, "data", "queue.db")
	fillTook := fillQueue(b, qpath, n, payload)

	// Drain.
	c.reset()
	started := time.Now()
	p = startOutpost(b, cfg)
	peak := sampleRSS(p.cmd.Process.Pid, 50*time.Millisecond)
	c.wait(b, n, "drain")
	wall := time.Since(started)
	drainRate := c.rate()
	top, samples, err := peak.stop()
	if err != nil {
		b.Fatalf("sampling outpost's memory: %v", err)
	}
	status, err := procStatus(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	hwm := status["VmHWM"]
	cpu, err := procCPU(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	// The last acknowledgement is recorded right after the last PUBACK: give
	// it a moment, then check that the queue is empty.
	time.Sleep(500 * time.Millisecond)
	stopClean(b, p)
	sessions := strings.Count(p.logs.String(), "upstream connected")
	q, err := storage.OpenReadOnly(qpath, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	st, err := q.Stats()
	q.Close()
	if err != nil {
		b.Fatal(err)
	}
	if st.Messages != 0 || len(st.Bridges) != 1 || st.Bridges[0].Pending != 0 || st.LastSeq != uint64(n+2*benchWindow) {
		b.Fatalf("queue after the drain: %d messages, last seq %d, bridges %+v; want empty after %d", st.Messages, st.LastSeq, st.Bridges, n)
	}
	arrived := c.n.Load()
	if arrived < int64(n) {
		b.Fatalf("drain: %d of %d messages arrived upstream", arrived, n)
	}

	ratio := drainRate / baseRate
	rssRatio := top.rss / idle.rss
	b.ReportMetric(drainRate, "drain-msgs/s")
	b.ReportMetric(baseRate, "baseline-msgs/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(idle.rss, "idle-rss-MiB")
	b.ReportMetric(top.rss, "peak-rss-MiB")
	b.ReportMetric(hwm, "hwm-MiB")
	b.ReportMetric(rssRatio, "rss-ratio")
	b.ReportMetric(float64(cpu/time.Microsecond)/float64(n), "outpost-cpu-µs/msg")
	b.Logf("%d messages of %d B, batch %d, window %d", n, benchPayload, benchBatch, benchWindow)
	b.Logf("baseline (paho from memory): %.0f msgs/s (publish loop %v)", baseRate, baseline.Round(time.Millisecond))
	b.Logf("drain: %.0f msgs/s first to last arrival; %v from start to last arrival; ratio %.2f (target >= 0.8)",
		drainRate, wall.Round(time.Millisecond), ratio)
	b.Logf("RSS MiB (anon+file): idle %s, peak sampled %s (%d samples), VmHWM %.1f (includes opening the queue); peak/idle %.2f (target <= 1.25)",
		idle, top, samples, hwm, rssRatio)
	b.Logf("outpost used %v of CPU (user+system, startup included): %.1f µs per message; load average at the end: %s",
		cpu.Round(time.Millisecond), float64(cpu/time.Microsecond)/float64(n), loadAverage())
	b.Logf("queue filled offline in %v; %d arrivals for %d messages (%d duplicates), %d upstream session(s)",
		fillTook.Round(time.Millisecond), arrived, n, arrived-int64(n), sessions)
}

// BenchmarkMQTTLatency measures the live path with the link up and
// queue.sync: always: a publisher sends min(OUTPOST_BENCH_MESSAGES, 10000)
// 64-byte QoS 1 messages at a steady 1,000 msgs/s to the real binary
// (pipelined: it does not wait for a PUBACK before the next send), whose
// bridge forwards them to an in-process mochi broker. Each payload carries
// its index and its send time (monotonic, from a clock shared by publisher
// and upstream, both in this process); the figures are the delays from
// local publish to upstream delivery. A short warm-up precedes the
// measured messages. The benchmark fails unless every message arrives.
func BenchmarkMQTTLatency(b *testing.B) {
	n := min(benchMessages(b), latencyMaxMsgs)
	for range b.N {
		epoch := time.Now()
		lat := make([]time.Duration, n)
		var mu sync.Mutex
		var got, dups, warm atomic.Int64
		addr := startMochiUpstream(b, func(pk packets.Packet) {
			now := time.Since(epoch)
			if len(pk.Payload) < 16 {
				return
			}
			idx := be.BigEndian.Uint64(pk.Payload)
			sent := time.Duration(be.BigEndian.Uint64(pk.Payload[8:]))
			if idx >= uint64(n) {
				warm.Add(1)
				return
			}
			mu.Lock()
			if lat[idx] != 0 {
				dups.Add(1)
			} else {
				lat[idx] = max(now-sent, 1)
				got.Add(1)
			}
			mu.Unlock()
		})

		dir := b.TempDir()
		p := startOutpost(b, writeBenchConfig(b, dir, addr, "queue: {sync: always}\n"))
		waitBridgeUp(b, p)

		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("latency").
			SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false).
			SetKeepAlive(30 * time.Second).SetWriteTimeout(10 * time.Second))
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("connecting to outpost: %v", tok.Error())
		}
		publish := func(idx uint64) paho.Token {
			buf := make([]byte, benchPayload)
			for i := 16; i < len(buf); i++ {
				buf[i] = 'x'
			}
			be.BigEndian.PutUint64(buf, idx)
			be.BigEndian.PutUint64(buf[8:], uint64(time.Since(epoch)))
			return cl.Publish(benchLocal, 1, false, buf)
		}
		// PUBACKs are checked in order by one goroutine; the publisher never
		// waits for them.
		toks := make(chan paho.Token, n+latencyWarmup)
		acked := make(chan error, 1)
		go func() {
			var err error
			for tok := range toks {
				if err == nil && (!tok.WaitTimeout(time.Minute) || tok.Error() != nil) {
					err = fmt.Errorf("publish to outpost not acknowledged: %v", tok.Error())
				}
			}
			acked <- err
		}()
		paced := func(count int, idx func(int) uint64) time.Duration {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			start := time.Now()
			sent := 0
			for sent < count {
				<-tick.C
				due := min(count, int(time.Since(start)*latencyRate/time.Second)+1)
				for ; sent < due; sent++ {
					toks <- publish(idx(sent))
				}
			}
			return time.Since(start)
		}
		paced(latencyWarmup, func(i int) uint64 { return uint64(n + i) })
		deadline := time.Now().Add(30 * time.Second)
		for warm.Load() < latencyWarmup {
			if time.Now().After(deadline) {
				b.Fatalf("warm-up: %d of %d messages arrived upstream\n%s", warm.Load(), latencyWarmup, p.logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := paced(n, func(i int) uint64 { return uint64(i) })
		close(toks)
		if err := <-acked; err != nil {
			b.Fatal(err)
		}
		deadline = time.Now().Add(30 * time.Second)
		for got.Load() < int64(n) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d messages arrived upstream\n%s", got.Load(), n, p.logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cl.Disconnect(0)
		stopClean(b, p)

		mu.Lock()
		d := slices.Clone(lat)
		mu.Unlock()
		slices.Sort(d)
		pct := func(q float64) float64 {
			i := min(len(d)-1, int(q*float64(len(d))))
			return float64(d[i]) / float64(time.Millisecond)
		}
		var sum time.Duration
		for _, v := range d {
			sum += v
		}
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(pct(0.999), "p99.9-ms")
		b.ReportMetric(float64(d[len(d)-1])/float64(time.Millisecond), "max-ms")
		b.ReportMetric(float64(benchMaxDelay)/float64(time.Millisecond), "max-delay-ms")
		b.Logf("%d QoS 1 messages at %.0f msgs/s (sent in %v), sync: always, batch.max_delay %v: latency ms p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f, mean %.2f (target p99 <= %v); %d duplicates; load average %s",
			n, float64(n)/took.Seconds(), took.Round(time.Millisecond), benchMaxDelay, pct(0.50), pct(0.99), pct(0.999),
			float64(d[len(d)-1])/float64(time.Millisecond), float64(sum/time.Duration(n))/float64(time.Millisecond),
			benchMaxDelay+10*time.Millisecond, dups.Load(), loadAverage())
	}
}

// writeBenchConfig writes a config like writeConfig's, with the bridge
// "cloud" pointed at upstream and the default batch spelled out.
func writeBenchConfig(tb testing.TB, dir, upstream, extra string) string {
	tb.Helper()
	cfg := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
log: {level: info}
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth: {anonymous: true}
bridges:
  - name: cloud
    mqtt: {url: "tcp://%s", client_id: outpost-bench, keepalive: 30s}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}
    batch: {max_messages: %d, max_delay: %v}
%s`, filepath.Join(dir, "data"), upstream, benchBatch, benchMaxDelay, extra)
	path := filepath.Join(dir, "outpost.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// waitBridgeUp waits until the binary logs that its bridge connected.
func waitBridgeUp(tb testing.TB, p *proc) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logs.String(), "upstream connected") {
		if time.Now().After(deadline) {
			tb.Fatalf("the bridge did not connect:\n%s", p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fillQueue enqueues n QoS 1 messages for the bridge "cloud" into the queue
// file at path, pipelined (the committer groups them), and fails unless
// every one is stored.
func fillQueue(tb testing.TB, path string, n int, payload []byte) time.Duration {
	tb.Helper()
	start := time.Now()
	q, err := storage.Open(path, storage.Options{Bridges: []string{"cloud"}})
	if err != nil {
		tb.Fatal(err)
	}
	qb, err := q.Bridge("cloud")
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	const chunk = 32768
	var prev, cur []*storage.Ticket
	check := func(ts []*storage.Ticket) {
		for _, t := range ts {
			if _, err := t.Wait(ctx); err != nil {
				tb.Fatalf("enqueue: %v", err)
			}
		}
	}
	for range n {
		t, err := q.Enqueue(ctx, &storage.Message{Topic: benchLocal, Payload: payload, QoS: 1, Bridges: qb.Mask()})
		if err != nil {
			tb.Fatal(err)
		}
		cur = append(cur, t)
		if len(cur) == chunk {
			check(prev)
			prev, cur = cur, prev[:0]
		}
	}
	check(prev)
	check(cur)
	if got := qb.Pending(); got != uint64(n) {
		tb.Fatalf("queue filled with %d messages pending for cloud, want %d", got, n)
	}
	if err := q.Close(); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// publishBaseline publishes n messages at QoS 1 to the upstream topic with
// a plain paho client, at most benchWindow unacknowledged at a time, and
// returns how long the publish loop took once every one was acknowledged.
func publishBaseline(tb testing.TB, addr, topic string, n int, payload []byte) time.Duration {
	tb.Helper()
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("baseline").
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false).
		SetKeepAlive(30 * time.Second).SetWriteTimeout(30 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("baseline: connecting to the upstream: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	sem := make(chan struct{}, benchWindow)
	toks := make(chan paho.Token, benchWindow)
	acked := make(chan error, 1)
	go func() {
		var err error
		for tok := range toks {
			if err == nil && (!tok.WaitTimeout(time.Minute) || tok.Error() != nil) {
				err = fmt.Errorf("baseline: publish not acknowledged: %v", tok.Error())
			}
			<-sem
		}
		acked <- err
	}()
	start := time.Now()
	for range n {
		sem <- struct{}{}
		toks <- cl.Publish(topic, 1, false, payload)
	}
	close(toks)
	if err := <-acked; err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// arrivals counts messages arriving upstream and when the first and the
// latest arrived.
type arrivals struct {
	n           atomic.Int64
	first, last atomic.Int64 // ns since epoch
	epoch       time.Time
}

func (a *arrivals) reset() {
	a.epoch = time.Now()
	a.first.Store(0)
	a.last.Store(0)
	a.n.Store(0)
}

func (a *arrivals) add() {
	now := int64(time.Since(a.epoch))
	if a.n.Add(1) == 1 {
		a.first.Store(now)
	}
	a.last.Store(now)
}

// rate is messages per second from the first arrival to the latest.
func (a *arrivals) rate() float64 {
	d := time.Duration(a.last.Load() - a.first.Load())
	if d <= 0 {
		return 0
	}
	return float64(a.n.Load()-1) / d.Seconds()
}

// wait waits until n messages have arrived, failing when none arrives for
// a minute.
func (a *arrivals) wait(tb testing.TB, n int, what string) {
	tb.Helper()
	seen, progress := a.n.Load(), time.Now()
	for {
		got := a.n.Load()
		if got >= int64(n) {
			return
		}
		if got != seen {
			seen, progress = got, time.Now()
		}
		if time.Since(progress) > time.Minute {
			tb.Fatalf("%s: %d of %d messages arrived upstream, none for a minute", what, got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startMochiUpstream starts an in-process mochi broker on a loopback port,
// with an inline subscription to site/# calling onMsg for each message
// (nothing is stored), and returns its address.
func startMochiUpstream(tb testing.TB, onMsg func(packets.Packet)) string {
	tb.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("up", ln)); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Subscribe("site/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) { onMsg(pk) }); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// mosquittoBinary finds the mosquitto broker (Debian puts it in /usr/sbin).
func mosquittoBinary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// startMosquittoUpstream runs mosquitto on a loopback port with a paho
// subscriber (QoS 0, in this process) to site/# counting into c, and
// returns mosquitto's address.
func startMosquittoUpstream(tb testing.TB, bin string, c *arrivals) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	// No limit on what mosquitto queues for a subscriber that falls behind.
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"max_queued_messages 0\nmax_queued_bytes 0\nlog_type error\n", port)), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("counter").
		SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).SetAutoReconnect(false).
		SetKeepAlive(30 * time.Second))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connecting to mosquitto: %v", tok.Error())
	}
	tb.Cleanup(func() { sub.Disconnect(0) })
	if tok := sub.Subscribe("site/#", 0, func(paho.Client, paho.Message) { c.add() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribing at mosquitto: %v", tok.Error())
	}
	return addr
}

// rssSampler reads a process's VmRSS at an interval and keeps the highest.
type rssSampler struct {
	stopc chan struct{}
	done  chan struct{}
	top   rss
	n     int
	err   error
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			r, err := procRSS(pid)
			if err != nil {
				s.err = err
				return
			}
			s.n++
			if r.rss > s.top.rss {
				s.top = r
			}
			select {
			case <-t.C:
			case <-s.stopc:
				return
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the highest VmRSS seen.
func (s *rssSampler) stop() (rss, int, error) {
	close(s.stopc)
	<-s.done
	return s.top, s.n, s.err
}

// procCPU is the user plus system CPU time pid has used, from
// /proc/<pid>/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// loadAverage is the first three fields of /proc/loadavg: other work on
// the machine skews the rates.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// hostCPU is the machine's CPU time from /proc/stat, in clock ticks: all
// of it, and the part stolen (a virtual machine's CPUs given to others by
// the host).
type hostCPU struct{ total, steal int64 }

func readHostCPU() hostCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var h hostCPU
	for i := 1; i < len(f); i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		h.total += v
		if i == 8 {
			h.steal = v
		}
	}
	return h
}

// stolen is the share of the machine's CPU time stolen from a to b, in
// percent: a busy host slows every rate, the baseline's too, unevenly.
func stolen(a, b hostCPU) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * float64(b.steal-a.steal) / float64(b.total-a.total)
}

// procRSS reads VmRSS, RssAnon and RssFile of pid, in MiB.
func procRSS(pid int) (rss, error) {
	f, err := procStatus(pid)
	return rss{f["VmRSS"], f["RssAnon"], f["RssFile"]}, err
}

// procStatus reads the kB fields of /proc/<pid>/status, in MiB.
func procStatus(pid int) (map[string]float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/status: %s:%s", pid, k, v)
		}
		m[k] = kb / 1024
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if m["VmRSS"] == 0 {
		return nil, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, nil
}
