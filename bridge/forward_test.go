package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/storage"
)

// memLink is an upstream that acknowledges each message as it is sent and
// records when (in the synctest bubble's time). It stands in for the network
// only where exact timing is the point: paced draining.
type memLink struct {
	mu     sync.Mutex
	at     []time.Time
	lostCh chan struct{}
}

type doneDelivery struct{}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (doneDelivery) Done() <-chan struct{} { return closed }
func (doneDelivery) Error() error          { return nil }

func (l *memLink) send(m *storage.Message) (delivery, error) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
	return doneDelivery{}, nil
}
func (l *memLink) lost() <-chan struct{} { return l.lostCh }
func (l *memLink) closedByPeer() bool    { return false }

// TestMaxRate: with max_rate set, a backlog drains at that rate and no
// faster, in every one-second window; without it, at once.
func TestMaxRate(t *testing.T) {
	for _, rate := range []float64{0, 100} {
		synctest.Test(t, func(t *testing.T) {
			const n = 1000
			q, qb := openQueue(t)
			enqueue(t, q, qb.Mask(), 0, n, 3)
			l := &memLink{lostCh: make(chan struct{})}
			f := &forwarder{qb: qb, maxMessages: 50, maxBytes: 1 << 20, maxDelay: 50 * time.Millisecond,
				pace: &pacer{rate: rate}, c: &counters{}, log: slog.New(slog.DiscardHandler)}
			ctx, cancel := context.WithCancel(t.Context())
			start := time.Now()
			done := make(chan error)
			go func() { done <- f.run(ctx, l) }()
			for qb.Pending() > 0 {
				time.Sleep(10 * time.Millisecond)
			}
			took := time.Since(start)
			cancel()
			<-done
			if len(l.at) != n {
				t.Fatalf("%d sent, want %d", len(l.at), n)
			}
			if rate == 0 {
				if took > 100*time.Millisecond {
					t.Fatalf("unpaced drain of %d took %v of fake time", n, took)
				}
				return
			}
			// n messages at rate/s: the last leaves (n-1)/rate after the first.
			if span := l.at[n-1].Sub(l.at[0]); span < time.Duration(float64(n-1)/rate*float64(time.Second)) {
				t.Fatalf("max_rate %v: %d messages in %v", rate, n, span)
			}
			for i := range l.at {
				j := i
				for j < len(l.at) && l.at[j].Sub(l.at[i]) < time.Second {
					j++
				}
				if j-i > int(rate)+1 {
					t.Fatalf("max_rate %v: %d messages within one second from message %d", rate, j-i, i)
				}
			}
		})
	}
}

// fakeClock records the waits the reconnect loop asks for and ends each at
// once, so a test sees the whole backoff sequence without waiting it out.
type fakeClock struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return time.Now() }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

func (c *fakeClock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// TestReconnectBackoff: with the upstream down, the bridge waits between
// attempts along a jittered exponential curve from reconnect.min to
// reconnect.max, through the injected clock; a successful connection starts
// the curve again from min.
func TestReconnectBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connections are refused until the upstream starts
	_, qb := openQueue(t)
	clock := &fakeClock{}
	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(`  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 10s}
    forward: [{from: "sensors/#", to: "site/{topic}"}]
    reconnect: {min: 100ms, max: 800ms}
`, addr)), GatewayID: "gw-1", Queue: qb, Clock: clock})

	waitUntil(t, 10*time.Second, "eight refused attempts", func() bool { return len(clock.recorded()) >= 8 })
	for i, d := range clock.recorded()[:8] {
		ceil := min(100*time.Millisecond<<i, 800*time.Millisecond)
		if d < ceil/2 || d > ceil {
			t.Fatalf("wait %d: %v, want within [%v, %v]", i, d, ceil/2, ceil)
		}
	}
	up := bridgetest.NewUpstreamOn(t, addr, "site/#")
	waitUntil(t, 10*time.Second, "bridge up", func() bool { return b.Stats().Up })
	before := len(clock.recorded())
	up.Close()
	waitUntil(t, 10*time.Second, "bridge down", func() bool { return !b.Stats().Up && len(clock.recorded()) > before })
	if d := clock.recorded()[before]; d > 100*time.Millisecond {
		t.Fatalf("first wait after a good connection was lost: %v, want at most reconnect.min", d)
	}
}

// heldLink is an upstream that acknowledges each message as it is sent,
// with a delivery of its own whose collection a test can watch.
type heldLink struct {
	mu     sync.Mutex
	ds     []weak.Pointer[heldDelivery]
	lostCh chan struct{}
}

type heldDelivery struct {
	payload []byte // as an MQTT delivery holds its message
}

func (*heldDelivery) Done() <-chan struct{} { return closed }
func (*heldDelivery) Error() error          { return nil }

func (l *heldLink) send(m *storage.Message) (delivery, error) {
	d := &heldDelivery{payload: m.Payload}
	l.mu.Lock()
	l.ds = append(l.ds, weak.Make(d))
	l.mu.Unlock()
	return d, nil
}
func (l *heldLink) lost() <-chan struct{} { return l.lostCh }
func (l *heldLink) closedByPeer() bool    { return false }

// TestWindowLetsGoOfDeliveries: a delivery the forwarder is done with is
// not kept alive by its window. After a drain, an idle forwarder holds none
// of the drained messages' deliveries, nor so their payloads (the window's
// array, reused, kept the entries behind its length).
func TestWindowLetsGoOfDeliveries(t *testing.T) {
	q, err := storage.Open(filepath.Join(t.TempDir(), "queue.db"), storage.Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	qb, _ := q.Bridge("cloud")
	const n = 500
	enqueue(t, q, qb.Mask(), 0, n, 3)
	l := &heldLink{lostCh: make(chan struct{})}
	f := &forwarder{qb: qb, maxMessages: 50, maxBytes: 1 << 20, maxDelay: time.Millisecond,
		pace: &pacer{}, c: &counters{}, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- f.run(ctx, l) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); qb.Position() < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("position %d of %d", qb.Position(), n)
		}
	}
	time.Sleep(20 * time.Millisecond) // the forwarder back to waiting for messages
	runtime.GC()
	runtime.GC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ds) != n {
		t.Fatalf("%d sent, want %d", len(l.ds), n)
	}
	alive := 0
	for _, w := range l.ds {
		if w.Value() != nil {
			alive++
		}
	}
	if alive > 1 {
		t.Fatalf("the idle forwarder keeps %d of %d finished deliveries alive", alive, n)
	}
}

// restLink is a memLink that counts the forwarder's rest calls, and the
// messages it had been sent at each, and the deliveries it was told were
// harvested.
type restLink struct {
	memLink
	rests  []int
	reaped int // deliveries reported harvested
}

func (l *restLink) harvested(n int) {
	l.mu.Lock()
	l.reaped += n
	l.mu.Unlock()
}

func (l *restLink) rest() {
	l.mu.Lock()
	l.rests = append(l.rests, len(l.at))
	l.mu.Unlock()
}

// TestForwarderRests: a link that keeps things for reuse is told to let go
// of them once everything is sent and done and the forwarder waits for
// more; not while it drains. Each delivery is reported harvested once (a
// link reuses what it is told of).
func TestForwarderRests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 1000
		q, qb := openQueue(t)
		enqueue(t, q, qb.Mask(), 0, n, 3)
		l := &restLink{memLink: memLink{lostCh: make(chan struct{})}}
		f := &forwarder{qb: qb, maxMessages: 50, maxBytes: 1 << 20, pace: &pacer{}, c: &counters{}, log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- f.run(ctx, l) }()
		synctest.Wait()
		l.mu.Lock()
		rests := append([]int(nil), l.rests...)
		l.mu.Unlock()
		if len(rests) == 0 || rests[0] != n {
			t.Fatalf("rest calls after %v messages sent; want the first after all %d", rests, n)
		}
		enqueue(t, q, qb.Mask(), n, 10, 3)
		synctest.Wait()
		l.mu.Lock()
		rests = append(rests[:0], l.rests...)
		l.mu.Unlock()
		if last := rests[len(rests)-1]; last != n+10 {
			t.Fatalf("last rest after %d messages sent; want after %d", last, n+10)
		}
		l.mu.Lock()
		harvested := l.reaped
		l.mu.Unlock()
		if harvested != n+10 {
			t.Fatalf("%d deliveries reported harvested of the %d sent and done", harvested, n+10)
		}
		cancel()
		<-done
	})
}
