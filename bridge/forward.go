package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// errLinkLost ends a session whose upstream connection went away.
var errLinkLost = errors.New("upstream connection lost")

// Reasons a bridge drops a queued message; each is counted and logged.
const (
	// DropNoRoute: no forward route of the bridge matches the message any
	// more (the config changed since it was queued).
	DropNoRoute = "no_route"
	// DropRefused: the upstream refused the message itself, again and again
	// (an ACL denying the topic, a record too large for the cluster).
	DropRefused = "upstream_refused"
)

// dropError is the outcome of a message that can never be delivered: the
// forwarder counts it by reason, logs it and goes on. Any other delivery
// error ends the session, and the message is sent again on the next one.
type dropError struct {
	reason string
	err    error
}

func (e *dropError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *dropError) Unwrap() error { return e.err }

// drop marks err as permanent for the message it concerns.
func drop(reason string, err error) error { return &dropError{reason, err} }

// delivery is a message handed to the upstream, done when the upstream has
// acknowledged it (Error nil) or the attempt failed.
type delivery interface {
	Done() <-chan struct{}
	Error() error
}

// link is one connected upstream session.
type link interface {
	// send hands m upstream. A *dropError means the message is not to be
	// sent; any other error ends the session, as a loss if lost is closed
	// by then (errLinkLost, or an error of something the loss cut short):
	// what is done is recorded.
	send(m *storage.Message) (delivery, error)
	// lost is closed when the session has ended.
	lost() <-chan struct{}
	// closedByPeer reports, once lost is closed, whether the upstream
	// closed the connection itself, as MQTT 3.1.1 brokers do to refuse a
	// publish, rather than the network failing or going silent.
	closedByPeer() bool
}

// unfinished counts the deliveries in the window not yet done.
func unfinished(window []inflight) int {
	n := 0
	for i := range window {
		if !isDone(window[i].d) {
			n++
		}
	}
	return n
}

// copier is a link whose send copies what it keeps of a message: the
// payloads of one read are reused for the next.
type copier interface{ copies() }

// counter is a link that counts its deliveries not yet done, so that the
// forwarder need not look through a window of thousands for them.
type counter interface{ outstanding() int }

// progresser is a link whose deliveries can finish out of order; progress
// is signalled (at least once) after any of them finishes.
type progresser interface{ progress() <-chan struct{} }

// batcher is a link that gathers the messages it is sent into batches
// (Kafka's). The forwarder calls push after each round of sending: the
// link hands on what it gathered, at once when full (nothing more can be
// sent until acknowledgements return), or else to wait up to
// batch.max_delay for more. A batcher's window is refilled only when there
// is room for a whole batch (max_messages): refilled a few messages at a
// time, as acknowledgements trickle back, it would send many small
// batches.
type batcher interface{ push(full bool) }

// rester is a link that keeps things for reuse while busy, and lets go of
// them when the forwarder has nothing in flight and waits for messages.
type rester interface{ rest() }

// harvester is a link that reuses its deliveries: the forwarder tells it
// when it is done with them, the n oldest it was given that it had not
// reported before (it takes them off the window in the order it got them).
type harvester interface{ harvested(n int) }

// Stats are a bridge's counters, for the metrics endpoint.
type Stats struct {
	Name      string
	Up        bool
	Forwarded uint64    // messages acknowledged upstream since start
	Pending   uint64    // messages waiting in the queue for this bridge
	LastAck   time.Time // when the upstream last acknowledged a message; zero if never
	// Dropped counts the messages the bridge gave up on, by reason
	// (DropNoRoute, DropRefused, ...), since start.
	Dropped map[string]uint64
	// LastError is why the last session ended or failed to start ("" if
	// none has): what a technician needs to see while the bridge is down.
	LastError string
}

type counters struct {
	up        atomic.Bool
	forwarded atomic.Uint64
	lastAck   atomic.Int64 // Unix ns
	mu        sync.Mutex
	dropped   map[string]uint64
	lastErr   string
}

func (c *counters) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

func (c *counters) drop(reason string) {
	c.mu.Lock()
	if c.dropped == nil {
		c.dropped = map[string]uint64{}
	}
	c.dropped[reason]++
	c.mu.Unlock()
}

func (c *counters) stats(name string, pending uint64) Stats {
	s := Stats{Name: name, Up: c.up.Load(), Forwarded: c.forwarded.Load(), Pending: pending, Dropped: map[string]uint64{}}
	if ns := c.lastAck.Load(); ns != 0 {
		s.LastAck = time.Unix(0, ns)
	}
	c.mu.Lock()
	for k, v := range c.dropped {
		s.Dropped[k] = v
	}
	s.LastError = c.lastErr
	c.mu.Unlock()
	return s
}

// forwarder moves one bridge's messages from the queue to a link.
type forwarder struct {
	qb          *storage.Bridge
	maxMessages int
	maxBytes    int
	maxDelay    time.Duration
	pace        *pacer
	c           *counters
	log         *slog.Logger

	// refuseAfter > 0 turns on refusal detection, for upstreams whose only
	// way to refuse a publish is to close the connection (MQTT 3.1.1). The
	// oldest message still unacknowledged when a session is lost becomes
	// the suspect; the next session sends it alone (a probe) before
	// anything else. When the upstream closes the connection within
	// probeWait of a probe refuseAfter times in a row, the message is
	// dropped as DropRefused, so that one refused topic cannot stop the
	// whole bridge. A blackholed or reset link never counts: it is not a
	// close by the peer, or it happens before the probe is sent.
	refuseAfter int
	probeWait   time.Duration
	suspect     uint64
	strikes     int
	probeSent   time.Time // when the probe, the window's only message, was sent

	// gone holds the messages dropped above the durable position: a
	// session that ends before the position passes them must not send,
	// count or log them again in the next.
	gone map[uint64]struct{}
}

type inflight struct {
	seq uint64
	d   delivery
}

// run forwards until the link is lost or ctx is done. It starts from the
// durable position, so a new session resends whatever the last one had not
// had acknowledged.
func (f *forwarder) run(ctx context.Context, l link) error {
	acked := f.qb.Position() // the position recorded, or being recorded
	read := acked
	window := make([]inflight, 0, 2*f.maxMessages)
	var buf []storage.Message // each Read's, reused
	// What the link can do, asked once.
	_, copying := l.(copier)
	bl, batching := l.(batcher)
	cl, counts := l.(counter)
	pl, progresses := l.(progresser)
	rl, rests := l.(rester)
	hl, harvests := l.(harvester)
	done := acked // last seq whose delivery, and every one before it, is done
	lastAck := time.Now()
	// Positions are recorded by a goroutine of their own: the commit and
	// its fsync overlap with sending, and requests made meanwhile are
	// coalesced into one. The session ends only after the last one.
	rec := newRecorder(f.qb)
	defer rec.close()
	ack := func(seq uint64) error {
		if err := rec.err(); err != nil {
			return fmt.Errorf("recording upstream ack: %w", err)
		}
		if seq <= acked {
			return nil
		}
		rec.request(seq)
		acked, lastAck = seq, time.Now()
		if len(f.gone) > 1024 {
			f.forget(acked)
		}
		return nil
	}
	if f.gone == nil {
		f.gone = make(map[uint64]struct{})
	}
	f.forget(acked)
	probing := f.refuseAfter > 0 && f.suspect > acked
	if !probing {
		f.suspect, f.strikes = 0, 0
	}
	// lost ends the session: it records what is done, so the next session
	// resends as little as possible, and notes the suspect.
	lost := func() error {
		n, _ := f.harvest(window)
		if n > 0 {
			done = window[n-1].seq
		}
		if err := ack(done); err != nil {
			return err
		}
		f.noteLoss(l, window[n:], probing)
		return errLinkLost
	}
	for {
		changed := f.qb.Changed() // before reading, so no commit is missed
		// Fill the window: up to two batches in flight (sent, not done), one
		// while probing. An upstream that finishes out of order (Kafka's
		// partitions) leaves done messages behind an unfinished one; they
		// stay in the window, which holds at most four times the limit.
		limit, span, refill := 2*f.maxMessages, 8*f.maxMessages, 1
		if probing {
			limit, span = 1, 1
		}
		if batching && !probing {
			refill = f.maxMessages
		}
		busy := 0
		if counts {
			busy = cl.outstanding()
		} else {
			busy = unfinished(window)
		}
		for busy <= limit-refill && len(window) < span {
			if !copying {
				clear(buf) // let go of the last batch's payloads
			}
			msgs, next, err := f.qb.ReadAppend(buf[:0], read, min(f.maxMessages, limit-busy, span-len(window)), f.maxBytes)
			if err != nil {
				return fmt.Errorf("reading queue: %w", err)
			}
			buf = msgs
			for i := range msgs {
				m := &msgs[i]
				if _, ok := f.gone[m.Seq]; ok {
					continue
				}
				if f.refuseAfter > 0 && m.Seq == f.suspect && f.strikes >= f.refuseAfter {
					f.dropped(m, &dropError{DropRefused, fmt.Errorf("the upstream closed the connection each of the last %d times it was sent", f.strikes)})
					probing, f.suspect, f.strikes = false, 0, 0
					continue
				}
				if err := f.pace.wait(ctx, l.lost()); err != nil {
					if errors.Is(err, errLinkLost) {
						return lost()
					}
					return err
				}
				d, err := l.send(m)
				if err != nil {
					// (de is declared here: taking its address moves
					// it to the heap, once per message if it were
					// declared for every send.)
					var de *dropError
					if errors.As(err, &de) {
						f.dropped(m, de)
						continue
					}
					if errors.Is(err, errLinkLost) || isClosed(l.lost()) {
						return lost()
					}
					return err
				}
				if probing {
					f.probeSent = time.Now()
				}
				window = append(window, inflight{seq: m.Seq, d: d})
				busy++
			}
			if next == read {
				break // nothing more in the queue
			}
			read = next
		}
		full := busy > limit-refill || len(window) >= span
		if batching {
			bl.push(full)
		}
		if len(window) == 0 {
			// Everything read is done: record it, including records
			// skipped as not for this bridge, then wait for more.
			if err := ack(read); err != nil {
				return err
			}
			done = read
			if rests {
				rl.rest()
			}
			select {
			case <-changed:
				continue
			case <-l.lost():
				return lost()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Wait for the oldest delivery, then take every finished one; with
		// room in the window, a new commit is sent at once too (a live
		// message must not wait for an upstream round trip).
		var progress <-chan struct{}
		if full {
			changed = nil
			if progresses && len(window) < span {
				progress = pl.progress()
			}
		}
		select {
		case <-window[0].d.Done():
		case <-progress:
			continue // room for more in flight
		case <-changed:
			continue
		case <-l.lost():
			return lost()
		case <-ctx.Done():
			return ctx.Err()
		}
		n, failed := f.harvest(window)
		if n > 0 {
			done = window[n-1].seq
		}
		// Counted: lost must not count them again. The vacated tail is
		// cleared, or it would keep finished deliveries (and whatever holds
		// them) alive until overwritten.
		rest := copy(window, window[n:])
		clear(window[rest:])
		window = window[:rest]
		if harvests && n > 0 {
			hl.harvested(n)
		}
		if failed != nil {
			// Finished with an error that is not a drop: the session is
			// broken (paho fails the pending publishes just before it
			// reports the lost connection); the message is sent again on
			// the next one.
			select {
			case <-l.lost():
				return lost()
			case <-time.After(time.Second):
			}
			if err := ack(done); err != nil {
				return err
			}
			return fmt.Errorf("upstream did not take message %d: %w", window[0].seq, failed)
		}
		if probing && done >= f.suspect {
			probing, f.suspect, f.strikes = false, 0, 0 // the upstream took it
		}
		// Record the position when all is done, and while draining every
		// recordEvery: one transaction for many batches. A commit costs
		// more than its messages' deletion: bbolt writes its whole free
		// list each time, and a file that a backlog filled and the drain
		// is emptying has tens of thousands of free pages.
		if len(window) == 0 || time.Since(lastAck) >= recordEvery {
			target := done
			if len(window) == 0 {
				target = read
			}
			if err := ack(target); err != nil {
				return err
			}
		}
	}
}

// recordEvery bounds how far, in time, the durable position lags behind
// the upstream's acknowledgements while a backlog drains: what a crash
// would send again.
const recordEvery = 250 * time.Millisecond

// recorder records a bridge's position on its own goroutine, one commit at
// a time, always the latest requested.
type recorder struct {
	qb   *storage.Bridge
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	want uint64
	fail error
}

func newRecorder(qb *storage.Bridge) *recorder {
	r := &recorder{qb: qb, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *recorder) request(seq uint64) {
	r.mu.Lock()
	r.want = max(r.want, seq)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a commit is due already; it will take the latest
	}
}

func (r *recorder) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail
}

func (r *recorder) loop() {
	defer close(r.done)
	var did uint64
	for {
		stopping := false
		select {
		case <-r.kick:
		case <-r.stop:
			stopping = true
		}
		r.mu.Lock()
		want, failed := r.want, r.fail != nil
		r.mu.Unlock()
		if want > did && !failed {
			if err := r.qb.Ack(want); err != nil {
				r.mu.Lock()
				r.fail = err
				r.mu.Unlock()
			}
			did = want
		}
		if stopping {
			return
		}
	}
}

// close records the last requested position and stops.
func (r *recorder) close() error {
	close(r.stop)
	<-r.done
	return r.err()
}

// harvest counts the finished deliveries at the head of the window and
// returns how many there are. Deliveries finished with a drop are counted
// as dropped; an error of another kind stops the harvest and is returned
// (window[n] failed with it).
func (f *forwarder) harvest(window []inflight) (n int, failed error) {
	acked := 0
	for n < len(window) && isDone(window[n].d) {
		if err := window[n].d.Error(); err != nil {
			de := (*dropError)(nil)
			if !errors.As(err, &de) {
				failed = err
				break
			}
			f.gone[window[n].seq] = struct{}{}
			f.c.drop(de.reason)
			f.log.Warn("upstream refused a message; dropped", "seq", window[n].seq, "reason", de.reason, "error", de.err)
		} else {
			acked++
		}
		n++
	}
	if acked > 0 {
		f.c.forwarded.Add(uint64(acked))
		f.c.lastAck.Store(time.Now().UnixNano())
	}
	return n, failed
}

// forget lets go of the dropped messages up to the durable position pos.
func (f *forwarder) forget(pos uint64) {
	for seq := range f.gone {
		if seq <= pos {
			delete(f.gone, seq)
		}
	}
}

// dropped counts and logs a message the bridge gives up on.
func (f *forwarder) dropped(m *storage.Message, de *dropError) {
	f.gone[m.Seq] = struct{}{}
	f.c.drop(de.reason)
	f.log.Warn("queued message cannot be forwarded; dropped", "seq", m.Seq, "topic", m.Topic, "reason", de.reason, "error", de.err)
}

// noteLoss records the oldest unfinished message of a lost session as the
// suspect, and counts a strike when it was being probed and the upstream
// closed the connection soon after it was sent.
func (f *forwarder) noteLoss(l link, unfinished []inflight, probing bool) {
	if f.refuseAfter <= 0 || len(unfinished) == 0 {
		return
	}
	head := unfinished[0]
	switch {
	case probing && head.seq == f.suspect && l.closedByPeer() && time.Since(f.probeSent) < f.probeWait:
		f.strikes++
		f.log.Warn("upstream closed the connection after one message; it may refuse its topic",
			"seq", head.seq, "strike", f.strikes, "drop_after", f.refuseAfter)
	case head.seq != f.suspect:
		f.suspect, f.strikes = head.seq, 0
	default:
		f.strikes = 0 // not a refusal this time: the count is of consecutive ones
	}
}

// finisher is a delivery that can say it is done without a channel.
type finisher interface{ finished() bool }

// isClosed reports whether c is closed.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func isDone(d delivery) bool {
	if f, ok := d.(finisher); ok {
		return f.finished()
	}
	return isClosed(d.Done())
}

// pacer spaces sends to at most rate per second (0: unlimited), so that a
// backlog drains without saturating a metered uplink.
type pacer struct {
	rate float64
	next time.Time
}

func (p *pacer) wait(ctx context.Context, lost <-chan struct{}) error {
	if p == nil || p.rate <= 0 {
		return nil
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-lost:
			return errLinkLost
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.next = p.next.Add(time.Duration(float64(time.Second) / p.rate))
	return nil
}
