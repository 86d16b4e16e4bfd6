package storage

import (
	"context"
	"errors"
	"math/bits"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/outpost-edge/outpost/storage/internal/codec"
)

// batch is the set of messages that one commit writes.
type batch struct {
	tickets []*Ticket
	bytes   int64
	done    chan struct{} // closed when the commit has ended, either way
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Ticket is the receipt for an enqueued message.
type Ticket struct {
	rec  []byte
	mask uint64
	lost bool // refusing it loses it: QoS 0, or acknowledged early
	b    *batch
	seq  uint64 // set before b.done closes
	err  error  // set before b.done closes
}

// Done is closed when the commit that holds the message has ended.
func (t *Ticket) Done() <-chan struct{} { return t.b.done }

// Result returns the message's sequence number, or why it was not stored.
// It must be called only after Done is closed.
func (t *Ticket) Result() (uint64, error) { return t.seq, t.err }

// Wait blocks until the message is durable (its commit is fsynced) and
// returns its sequence number, or why it was not stored.
func (t *Ticket) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-t.b.done:
		return t.seq, t.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Enqueue hands m to the committer. It blocks only while MaxPending messages
// are already waiting for a commit. m.Seq is ignored; m.ReceivedAt defaults
// to now. The message is durable once the ticket says so.
func (q *Queue) Enqueue(ctx context.Context, m *Message) (*Ticket, error) {
	at := m.ReceivedAt
	if at.IsZero() {
		at = q.now()
	}
	r := codec.Record{QoS: m.QoS, Retain: m.Retain, ReceivedAt: at.UnixMilli(), Bridges: m.Bridges,
		Topic: m.Topic, Props: m.Props, Payload: m.Payload}
	t := &Ticket{rec: codec.Append(make([]byte, 0, codec.Size(&r)), &r), mask: m.Bridges, lost: m.QoS == 0 || m.AckedEarly}

	select {
	case q.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-q.closing:
		return nil, ErrClosed
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.sem
		return nil, ErrClosed
	}
	b := q.open
	t.b = b
	b.tickets = append(b.tickets, t)
	b.bytes += int64(len(t.rec) + 8)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return t, nil
}

// committer writes each batch in one transaction. While it commits, new
// messages gather in the next batch: under load every fsync carries many
// messages, and a lone message waits for no timer.
func (q *Queue) committer() {
	var last time.Time
	for {
		select {
		case <-q.kick:
		case <-q.closing:
			q.commit(q.swap()) // what was enqueued before Close
			return
		}
		if iv := q.opts.CommitInterval; iv > 0 {
			if wait := iv - q.now().Sub(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-q.closing:
				}
			}
			last = q.now()
		}
		q.commit(q.swap())
	}
}

// swap takes the open batch for committing, or returns nil when it is empty
// (an empty batch stays open: it must not be committed while it fills).
func (q *Queue) swap() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.open
	if len(b.tickets) == 0 {
		return nil
	}
	q.open = newBatch()
	return b
}

func (q *Queue) commit(b *batch) {
	if b == nil {
		return
	}
	defer func() {
		for range b.tickets {
			<-q.sem
		}
		close(b.done)
	}()
	err := q.append(b)
	if err != nil && diskFull(err) {
		q.log.Warn("disk full while committing; applying queue policy", "error", err, "messages", len(b.tickets))
		// Freed pages are reused only from the next transaction on, and a
		// copy-on-write commit needs fresh pages itself: evict a tenth of
		// the queue (at least twice the batch) per try.
		for try := 0; try < 3 && err != nil && diskFull(err) && q.opts.WhenFull == DropOldest; try++ {
			if derr := q.evict(max(2*int64(len(b.tickets)), int64(q.stats().count/10)), 2*b.bytes); derr != nil {
				// Too full even to rewrite the pages of a partial
				// eviction: drop the oldest segment whole, which
				// rewrites almost nothing.
				if !diskFull(derr) || q.evictSegment() != nil {
					break
				}
			}
			err = q.append(b)
		}
		if err != nil && diskFull(err) {
			err = ErrFull
		}
	}
	if err != nil {
		for _, t := range b.tickets {
			t.seq, t.err = 0, err
		}
		q.countRefused(b.tickets)
		if !errors.Is(err, ErrFull) {
			q.log.Error("committing to queue failed; messages refused", "error", err, "messages", len(b.tickets))
		}
	}
}

// append writes the batch's messages, applying MaxBytes first.
func (q *Queue) append(b *batch) error {
	q.wmu.Lock()
	seq := q.stats().seq
	err := q.extendLease(seq + uint64(len(b.tickets)))
	q.wmu.Unlock()
	if err != nil {
		return err
	}
	var refused []*Ticket
	var evicted uint64
	err = q.update(func(tx *bolt.Tx, st *state) error {
		refused, evicted = refused[:0], 0
		for _, t := range b.tickets {
			t.seq, t.err = 0, nil
		}
		w := newSegWriter(tx)
		accept := b.tickets
		if max := q.opts.MaxBytes; max > 0 && int64(st.bytes)+b.bytes > max {
			if q.opts.WhenFull == DropOldest {
				before := st.count
				if err := q.dropHead(tx, st, ReasonQueueFull, func(_ []byte, _ int64) bool {
					return int64(st.bytes)+b.bytes > max
				}); err != nil {
					return err
				}
				evicted = before - st.count
			} else {
				room := max - int64(st.bytes)
				n := 0
				for _, t := range b.tickets {
					if room < int64(len(t.rec)+8) {
						break
					}
					room -= int64(len(t.rec) + 8)
					n++
				}
				accept, refused = b.tickets[:n], b.tickets[n:]
			}
		}
		for _, t := range accept {
			st.seq++
			if err := w.put(st.seq, t.rec); err != nil {
				return err
			}
			t.seq = st.seq
			st.count++
			st.bytes += uint64(len(t.rec) + 8)
			for m := t.mask; m != 0; m &= m - 1 {
				st.bridges[bits.TrailingZeros64(m)].pending++
			}
		}
		for _, t := range refused {
			t.err = ErrFull
		}
		return nil
	})
	if err == nil {
		q.mu.Lock()
		q.commits++
		q.appended += uint64(len(b.tickets) - len(refused))
		q.mu.Unlock()
		if len(refused) > 0 {
			q.countRefused(refused)
			q.log.Warn("queue full: new messages refused (when_full: reject_new)", "messages", len(refused), "max_size", q.opts.MaxBytes)
		}
		if evicted > 0 {
			q.log.Warn("queue full: oldest messages dropped (when_full: drop_oldest)", "messages", evicted, "max_size", q.opts.MaxBytes)
		}
	}
	return err
}

// countRefused counts refused messages: one whose sender has no ack to wait
// for is lost (counted as a drop); a QoS 1/2 one stays with its sender
// (counted apart).
func (q *Queue) countRefused(ts []*Ticket) {
	var lost uint64
	q.mu.Lock()
	for _, t := range ts {
		if t.lost {
			lost++
		} else {
			q.rejected++
		}
	}
	q.mu.Unlock()
	if lost > 0 {
		// Persist the drop so that the counter survives restarts like the others.
		_ = q.update(func(_ *bolt.Tx, st *state) error {
			st.dropped[reasonIndex(ReasonQueueFull)] += lost
			return nil
		})
	}
}

func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.EDQUOT)
}
