package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/storage"
)

// TestChaos is the field chaos test (make chaos; issue 8): the real binary,
// its data on a 4 MiB tmpfs, two bridges forwarding every sensor message,
// one to an upstream mochi and one to a kfake Kafka cluster, each behind a
// proxy of its own, six sensors (MQTT 3.1.1 and 5, QoS 1 and 2) at a steady
// rate, and for CHAOS_DURATION (default 10m) random faults from CHAOS_SEED:
// a link (one or both) blackholed, refused or reset, SIGKILL and restart,
// outages long enough for the disk to fill (when_full: drop_oldest acts),
// SIGHUP, and once a queue file corrupted between a kill and a restart.
// Then the uplinks return for good, the queue drains, and the auditor
// (chaos_audit_test.go) accounts for every acknowledged message at each
// upstream. It runs only when CHAOS_DURATION is set.
func TestChaos(t *testing.T) {
	durS := os.Getenv("CHAOS_DURATION")
	if durS == "" {
		t.Skip("field chaos test: set CHAOS_DURATION (make chaos runs it for 10m)")
	}
	dur, err := time.ParseDuration(durS)
	if err != nil || dur < 10*time.Second {
		t.Fatalf("CHAOS_DURATION=%q: want a Go duration of at least 10s", durS)
	}
	seed := uint64(time.Now().UnixNano() % 1e6)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a number", s)
		}
	}
	fmt.Printf("chaos seed=%d duration=%s (CHAOS_SEED=%d reproduces the schedule)\n", seed, dur, seed)
	if os.Geteuid() != 0 {
		t.Skip("field chaos test skipped: the data dir must be a size-limited tmpfs, and mounting one needs root")
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("field chaos test skipped: cannot mount a tmpfs for the data dir: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(disk, syscall.MNT_DETACH) })

	const gateway = "chaos-gw"
	a := newAuditor(gateway)
	upAddr := startMochiUpstream(t, a.upstream)
	proxy := bridgetest.NewProxy(t, upAddr)
	kproxy := startKafkaUpstream(t, a.kafka)
	c := &chaos{
		t: t, rng: rand.New(rand.NewPCG(seed, 0x0ca05)), links: []*bridgetest.Proxy{proxy, kproxy}, a: a,
		dir: dir, queuePath: filepath.Join(disk, "data", "queue.db"),
		mqttAddr: freeAddr(t), httpAddr: freeAddr(t),
	}
	c.cfg = filepath.Join(dir, "outpost.yaml")
	cfg := fmt.Sprintf(`gateway_id: %s
data_dir: %s
log: {level: info}
listeners:
  - {name: sensors, type: tcp, address: "%s"}
auth: {anonymous: true}
queue: {max_size: 256MiB, when_full: drop_oldest, sync: always}
bridges:
  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 2s, envelope: json, connect_timeout: 2s}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}
    batch: {max_messages: 200, max_delay: 20ms}
    reconnect: {min: 50ms, max: 500ms}
  - name: lake
    kafka: {brokers: ["%s"]}
    forward:
      - {from: "sensors/#", topic: "%s", key: "{gateway_id}/{2}"}
    batch: {max_messages: 200, max_delay: 20ms}
    reconnect: {min: 50ms, max: 500ms}
http: {address: "%s"}
`, gateway, filepath.Join(disk, "data"), c.mqttAddr, proxy.Addr(), kproxy.Addr(), chaosKafkaTopic, c.httpAddr)
	if err := os.WriteFile(c.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c.start(false)
	rssDone := c.sampleRSS()
	stop := make(chan struct{})
	var sensors sync.WaitGroup
	for _, s := range newSensors(a, c.mqttAddr, 150) {
		sensors.Go(func() { s.run(stop) })
	}

	c.loop(start.Add(dur))

	// The uplinks return for good; the sensors stop; the queue drains.
	for _, l := range c.links {
		l.Blackhole.Store(false)
		l.SetDown(false)
	}
	c.checkAlive()
	close(stop)
	waitGroup(t, &sensors, 60*time.Second, "sensors to stop")
	c.waitDrained(120 * time.Second)
	fams, err := c.scrape()
	if err != nil {
		t.Fatalf("final /metrics: %v", err)
	}
	if err := c.p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("outpost did not stop cleanly on SIGTERM: %v\n%s", err, tail(c.p.logs.String(), 30))
	}
	close(rssDone)
	st := c.fileStats()
	c.epochs = append(c.epochs, epoch{lo: c.lo, hi: st.LastSeq, dropped: st.Dropped})
	if st.Messages != 0 {
		t.Errorf("queue holds %d messages after the drain", st.Messages)
	}
	// The queue's own drop counters live in the file: /metrics must say the same.
	for _, reason := range []string{storage.ReasonQueueFull, storage.ReasonMaxAge, storage.ReasonCorrupt} {
		if v, _ := metric(fams, "outpost_dropped_total", "reason", reason); uint64(v) != st.Dropped[reason] {
			t.Errorf("outpost_dropped_total{reason=%q} = %v, queue file says %d", reason, v, st.Dropped[reason])
		}
	}
	for _, m := range fams["outpost_dropped_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" && !queueReasons[l.GetValue()] && m.GetCounter().GetValue() > 0 {
				t.Errorf("outpost_dropped_total{reason=%q} = %v in the last run: nothing should drop that way here", l.GetValue(), m.GetCounter().GetValue())
			}
		}
	}

	rs := a.audit(c.epochs)
	r := rs[len(rs)-1] // the run's own checks
	maxRSS := c.maxRSS.Load()
	const rssBudgetMiB = 48 // runs stay near 27 MiB; a buffer held per live message took one to 63.5
	if float64(maxRSS)/1024 > rssBudgetMiB {
		r.fail("outpost RSS reached %.1f MiB: over the %d MiB budget", float64(maxRSS)/1024, rssBudgetMiB)
	}
	if c.diskFull == 0 {
		r.fail("the disk never filled: the run did not exercise when_full")
	}
	if c.corrupted == 0 {
		r.fail("the corrupt-queue scenario did not run")
	}
	if a := rs[0].acked; a < 1000 {
		r.fail("only %d messages acknowledged: the sensors did not get through", a)
	}
	var lost int
	var delivered, dups, corrupt []string
	for _, u := range rs[:len(rs)-1] {
		t.Logf("%s: %d published, %d acknowledged, %d refused (0x97), %d arrivals (%d duplicates, %d delivered unacknowledged), %d seqs vanished (%d counted), %d counted as dropped after they had arrived, %d stored twice, %d acked dropped, %d acked in the corrupted file",
			u.upstream, u.sent, u.acked, u.refused, u.arrivals, u.duplicates, u.deliveredUnacked, u.vanished, u.counted, u.droppedAfterDelivery, u.storedTwice, u.droppedAcked, u.corruptExpected)
		lost += u.lost
		delivered = append(delivered, fmt.Sprintf("%s=%d", u.upstream, u.delivered))
		dups = append(dups, fmt.Sprintf("%s=%d", u.upstream, u.duplicates))
		corrupt = append(corrupt, fmt.Sprintf("%s=%d", u.upstream, u.corruptExpected))
	}
	t.Logf("faults: %d kills, %d blackholes, %d refusals, %d resets (%d of the cuts on one link only), %d SIGHUPs, %d disk-full episodes, %d corrupted files; max RSS %.1f MiB",
		c.kills, c.blackholes, c.downs, c.resets, c.oneLink, c.hups, c.diskFull, c.corrupted, float64(maxRSS)/1024)
	summary := fmt.Sprintf("chaos seed=%d %s: %d acked, delivered %s, %d lost, duplicates %s, %d kills, %d link cuts, %d disk-full episodes, drops: %s (acked: %s), corrupt-expected: %s, max RSS %.1f MiB",
		seed, dur, rs[0].acked, strings.Join(delivered, " "), lost, strings.Join(dups, " "), c.kills, c.blackholes+c.downs+c.resets, c.diskFull,
		rs[0].dropsString(), ackedDrops(rs[:len(rs)-1]), strings.Join(corrupt, " "), float64(maxRSS)/1024)
	fmt.Println(summary)
	failed := false
	for _, u := range rs {
		for _, f := range u.failures {
			t.Error(f)
			failed = true
		}
	}
	if failed {
		t.Logf("last outpost log lines:\n%s", tail(c.p.logs.String(), 40))
	}
}

// ackedDrops says how many acknowledged messages each upstream missed
// through a counted drop.
func ackedDrops(rs []*auditReport) string {
	var parts []string
	for _, u := range rs {
		parts = append(parts, fmt.Sprintf("%s=%d", u.upstream, u.droppedAcked))
	}
	return strings.Join(parts, " ")
}

var queueReasons = map[string]bool{storage.ReasonQueueFull: true, storage.ReasonMaxAge: true, storage.ReasonCorrupt: true}

// chaos drives the faults. Its methods run on the test's goroutine.
type chaos struct {
	t         *testing.T
	rng       *rand.Rand
	links     []*bridgetest.Proxy // the uplinks: to the MQTT upstream, to Kafka
	a         *auditor
	dir       string
	cfg       string
	queuePath string
	mqttAddr  string
	httpAddr  string

	p      *proc
	procs  []*proc
	pid    atomic.Int64
	maxRSS atomic.Int64 // KiB

	lo     uint64 // the current queue file's seqs are above this
	epochs []epoch

	kills, blackholes, downs, resets, hups, diskFull, corrupted int
	oneLink                                                     int // cuts of one link, the other up
}

func (c *chaos) start(corrupted bool) {
	c.p = startOutpost(c.t, c.cfg)
	c.procs = append(c.procs, c.p)
	c.pid.Store(int64(c.p.cmd.Process.Pid))
	if !corrupted && strings.Contains(c.p.logs.String(), "QUEUE FILE CORRUPT") {
		c.t.Fatalf("outpost found its queue file corrupt after a plain kill:\n%s", tail(c.p.logs.String(), 30))
	}
}

// checkAlive fails the test if outpost exited without being told to.
func (c *chaos) checkAlive() {
	select {
	case err := <-c.p.done:
		c.p.done <- err
		c.t.Fatalf("outpost exited on its own: %v\n%s", err, tail(c.p.logs.String(), 40))
	default:
	}
}

func (c *chaos) sleep(lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(c.rng.Int64N(int64(hi-lo)+1)))
}

// loop applies faults until the deadline: one disk-full outage at about a
// fifth of the run, the corrupted file at about a half, the rest at random.
func (c *chaos) loop(deadline time.Time) {
	start := time.Now()
	total := deadline.Sub(start)
	fillAt, corruptAt := start.Add(total/5), start.Add(total/2)
	filled := false
	for time.Now().Before(deadline) {
		c.sleep(500*time.Millisecond, 3*time.Second)
		c.checkAlive()
		switch now := time.Now(); {
		case !filled && now.After(fillAt):
			filled = true
			c.fill(deadline)
			continue
		case c.corrupted == 0 && now.After(corruptAt):
			c.corrupt()
			continue
		}
		switch x := c.rng.IntN(100); {
		case x < 22: // blackhole: bytes vanish, connections stay open
			c.blackholes++
			links := c.pickLinks()
			for _, l := range links {
				l.Blackhole.Store(true)
			}
			c.sleep(time.Second, 8*time.Second)
			// A real outage ends with the dead connections reset: TCP does
			// not resume a stream with bytes missing from its middle.
			for _, l := range links {
				l.Reset()
				l.Blackhole.Store(false)
			}
		case x < 36: // link refused: resets, then connection refused
			c.downs++
			links := c.pickLinks()
			for _, l := range links {
				l.SetDown(true)
			}
			c.sleep(time.Second, 6*time.Second)
			for _, l := range links {
				l.SetDown(false)
			}
		case x < 52:
			c.resets++
			for _, l := range c.pickLinks() {
				l.Reset()
			}
		case x < 70:
			c.kill(time.Duration(c.rng.IntN(500)) * time.Millisecond)
		case x < 82:
			c.hups++
			c.p.cmd.Process.Signal(syscall.SIGHUP)
		default:
			c.fill(deadline)
		}
	}
}

// pickLinks chooses what a link fault cuts: both uplinks (the gateway's
// own LTE link), or one (an upstream's outage; the other bridge must go on
// forwarding).
func (c *chaos) pickLinks() []*bridgetest.Proxy {
	if i := c.rng.IntN(len(c.links) + 1); i < len(c.links) {
		c.oneLink++
		return c.links[i : i+1]
	}
	return c.links
}

// blackhole cuts every uplink until the returned func is called, which
// resets the dead connections and lets bytes through again.
func (c *chaos) blackhole() (restore func()) {
	c.blackholes++
	for _, l := range c.links {
		l.Blackhole.Store(true)
	}
	return func() {
		for _, l := range c.links {
			l.Reset()
			l.Blackhole.Store(false)
		}
	}
}

func (c *chaos) kill(down time.Duration) {
	c.kills++
	c.p.kill()
	time.Sleep(down)
	c.start(false)
}

// diskFullLines counts the queue's disk-full warnings over every run.
func (c *chaos) diskFullLines() int {
	n := 0
	for _, p := range c.procs {
		n += strings.Count(p.logs.String(), "disk full while committing")
	}
	return n
}

// fill cuts the uplink until the disk is full and drop_oldest has acted
// (or 40s), sometimes kills outpost on the full disk, then restores it.
func (c *chaos) fill(deadline time.Time) {
	before := c.diskFullLines()
	restore := c.blackhole()
	limit := time.Now().Add(40 * time.Second)
	for c.diskFullLines() == before && time.Now().Before(limit) {
		time.Sleep(200 * time.Millisecond)
		c.checkAlive()
	}
	if c.diskFullLines() > before {
		c.diskFull++
		c.sleep(0, 3*time.Second) // keep writing on a full disk
		if c.rng.IntN(2) == 0 {
			c.kill(time.Duration(c.rng.IntN(300)) * time.Millisecond) // restart on a full disk
			c.sleep(0, 2*time.Second)
		}
	} else {
		c.t.Logf("disk did not fill within 40s of outage")
	}
	restore()
}

// corrupt kills outpost, reads the queue file (what it holds is lost with
// it: the expected corruption figure), flips bytes in both bbolt meta pages
// and a few random ones, and restarts: outpost must move the file aside and
// serve with an empty queue whose seqs continue above the old ones.
func (c *chaos) corrupt() {
	c.corrupted++
	c.kills++
	restore := c.blackhole() // a backlog builds: it is lost with the file
	c.sleep(time.Second, 4*time.Second)
	c.p.kill()
	defer restore()
	q, err := storage.OpenReadOnly(c.queuePath, storage.Options{})
	if err != nil {
		c.t.Fatalf("reading the queue file after a kill: %v", err)
	}
	st, err := q.Stats()
	if err != nil {
		c.t.Fatal(err)
	}
	msgs, err := q.Peek(1 << 30)
	q.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	e := epoch{lo: c.lo, hi: st.LastSeq, dropped: st.Dropped, inFile: map[uint64]msgID{}}
	for _, m := range msgs {
		if id, ok := parsePayload(m.Payload); ok {
			e.inFile[m.Seq] = id
		}
	}
	c.epochs = append(c.epochs, e)

	f, err := os.OpenFile(c.queuePath, os.O_RDWR, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	fi, _ := f.Stat()
	flip := func(off int64) {
		b := []byte{0}
		f.ReadAt(b, off)
		b[0] ^= byte(1 + c.rng.IntN(255))
		f.WriteAt(b, off)
	}
	page := int64(storage.PageSize)
	for _, base := range []int64{0, page} { // both meta pages: magic to checksum
		for range 8 {
			flip(base + 16 + c.rng.Int64N(64))
		}
	}
	for range 16 {
		flip(2*page + c.rng.Int64N(max(fi.Size()-2*page, 1)))
	}
	f.Close()
	lease, err := os.ReadFile(c.queuePath + ".seq")
	if err != nil {
		c.t.Fatalf("reading the sequence lease: %v", err)
	}
	if c.lo, err = strconv.ParseUint(strings.TrimSpace(string(lease)), 10, 64); err != nil || c.lo < st.LastSeq {
		c.t.Fatalf("sequence lease %q is not above the last seq %d", lease, st.LastSeq)
	}

	c.start(true)
	if !strings.Contains(c.p.logs.String(), "QUEUE FILE CORRUPT") {
		c.t.Fatalf("outpost started on a corrupted queue file without saying so:\n%s", tail(c.p.logs.String(), 30))
	}
	// It is kept for inspection, unless the disk has no room for it and a
	// new queue (a queue that once filled the disk is as big as the disk).
	aside, _ := filepath.Glob(c.queuePath + ".corrupt-*")
	deleted := strings.Contains(c.p.logs.String(), "no room for a new queue beside the corrupt file")
	if len(aside) != 1 && !deleted {
		c.t.Fatalf("corrupted queue file neither kept for inspection nor deleted for room: %v", aside)
	}
	for _, f := range aside { // an operator copies it off the small disk
		if err := os.Remove(f); err != nil {
			c.t.Fatal(err)
		}
	}
	c.t.Logf("queue file corrupted with %d messages in it (seq %d..%d); seqs continue above %d; file kept: %v", len(msgs), e.lo+1, e.hi, c.lo, !deleted)
}

// waitDrained waits until the queue is empty and nothing more arrives.
func (c *chaos) waitDrained(d time.Duration) {
	deadline := time.Now().Add(d)
	last, stable := -1, 0
	for {
		c.checkAlive()
		fams, err := c.scrape()
		if err == nil {
			qm, _ := metric(fams, "outpost_queue_messages")
			n := c.a.arrivals()
			if qm == 0 && n == last {
				if stable++; stable >= 5 {
					return
				}
			} else {
				stable = 0
			}
			last = n
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("queue not drained within %s of the uplink's return (metrics: %v)\n%s", d, err, tail(c.p.logs.String(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *chaos) scrape() (map[string]*dto.MetricFamily, error) {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	tp := expfmt.NewTextParser(model.LegacyValidation)
	return tp.TextToMetricFamilies(strings.NewReader(string(b)))
}

func (c *chaos) fileStats() storage.Stats {
	q, err := storage.OpenReadOnly(c.queuePath, storage.Options{})
	if err != nil {
		c.t.Fatalf("reading the queue file after the run: %v", err)
	}
	defer q.Close()
	st, err := q.Stats()
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// sampleRSS records outpost's largest VmRSS until done is closed.
func (c *chaos) sampleRSS() chan struct{} {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid.Load()))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					if kb > c.maxRSS.Load() {
						c.maxRSS.Store(kb)
					}
				}
			}
		}
	}()
	return done
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
