package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// errLinkLost ends a session whose upstream connection went away.
var errLinkLost = errors.New("upstream connection lost")

// delivery is a message handed to the upstream, done when the upstream has
// acknowledged it (Error nil) or the attempt failed.
type delivery interface {
	Done() <-chan struct{}
	Error() error
}

// link is one connected upstream session.
type link interface {
	// send hands m upstream. A nil delivery with a nil error means the
	// message needs no sending (counted by send itself).
	send(m *storage.Message) (delivery, error)
	// lost is closed when the session has ended.
	lost() <-chan struct{}
}

// Stats are a bridge's counters, for the metrics endpoint.
type Stats struct {
	Name      string
	Up        bool
	Forwarded uint64    // messages acknowledged upstream since start
	Pending   uint64    // messages waiting in the queue for this bridge
	LastAck   time.Time // when the upstream last acknowledged a message; zero if never
	// DroppedNoRoute counts queued messages that no forward route of the
	// bridge matches any more (the config changed since they were queued).
	DroppedNoRoute uint64
}

type counters struct {
	up        atomic.Bool
	forwarded atomic.Uint64
	lastAck   atomic.Int64 // Unix ns
	noRoute   atomic.Uint64
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
}

type inflight struct {
	seq uint64
	d   delivery
}

// run forwards until the link is lost or ctx is done. It starts from the
// durable position, so a new session resends whatever the last one had not
// had acknowledged.
func (f *forwarder) run(ctx context.Context, l link) error {
	acked := f.qb.Position()
	read := acked
	window := make([]inflight, 0, 2*f.maxMessages)
	done := acked // last seq whose delivery, and every one before it, is done
	lastAck := time.Now()
	ack := func(seq uint64) error {
		if seq <= acked {
			return nil
		}
		if err := f.qb.Ack(seq); err != nil {
			return fmt.Errorf("recording upstream ack: %w", err)
		}
		acked, lastAck = seq, time.Now()
		return nil
	}
	for {
		changed := f.qb.Changed() // before reading, so no commit is missed
		// Fill the window: up to two batches in flight.
		for len(window) < 2*f.maxMessages {
			msgs, next, err := f.qb.Read(read, min(f.maxMessages, 2*f.maxMessages-len(window)), f.maxBytes)
			if err != nil {
				return fmt.Errorf("reading queue: %w", err)
			}
			for i := range msgs {
				if err := f.pace.wait(ctx, l.lost()); err != nil {
					return err
				}
				d, err := l.send(&msgs[i])
				if err != nil {
					return err
				}
				if d != nil {
					window = append(window, inflight{msgs[i].Seq, d})
				}
			}
			if next == read {
				break
			}
			read = next
		}
		if len(window) == 0 {
			// Everything read is done: record it, including records
			// skipped as not for this bridge, then wait for more.
			if err := ack(read); err != nil {
				return err
			}
			done = read
			select {
			case <-changed:
				continue
			case <-l.lost():
				return errLinkLost
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Wait for the oldest delivery, then take every finished one.
		select {
		case <-window[0].d.Done():
		case <-l.lost():
			return errLinkLost
		case <-ctx.Done():
			return ctx.Err()
		}
		n := 0
		for n < len(window) && isDone(window[n].d) {
			if err := window[n].d.Error(); err != nil {
				return fmt.Errorf("upstream refused message %d: %w", window[n].seq, err)
			}
			done = window[n].seq
			n++
		}
		window = append(window[:0], window[n:]...)
		f.c.forwarded.Add(uint64(n))
		f.c.lastAck.Store(time.Now().UnixNano())
		// Record the position once a batch is done or max_delay has passed:
		// one transaction for many messages.
		if len(window) == 0 || done-acked >= uint64(f.maxMessages) || time.Since(lastAck) >= f.maxDelay {
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

func isDone(d delivery) bool {
	select {
	case <-d.Done():
		return true
	default:
		return false
	}
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
