package storage

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/storage/internal/codec"
)

// dropChunk bounds the records one limit transaction removes, so that a huge
// backlog is trimmed in steps instead of one long transaction.
const dropChunk = 10000

// dropHead removes records from the head of the log while more(record, seq)
// holds, counting each as dropped for reason. A damaged record at the head
// is dropped as corrupt; a dead one (done, not yet deleted) goes uncounted.
func (q *Queue) dropHead(tx *bolt.Tx, st *state, reason string, more func(rec []byte, seq int64) bool) error {
	q.removing = true
	var keys [][]byte
	damaged := false
	c := newLogCursor(tx)
	for k, v := c.First(); k != nil && len(keys) < dropChunk; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		r := reason
		if codec.Verify(v) != nil {
			r = ReasonCorrupt
			damaged = true
		} else if st.done(codec.Bridges(v), seq) {
			keys = append(keys, k)
			continue
		} else if !more(v, int64(seq)) {
			break
		} else {
			st.forget(codec.Bridges(v), seq)
		}
		st.dropped[reasonIndex(r)]++
		st.count--
		st.bytes -= uint64(len(k) + len(v))
		keys = append(keys, k)
	}
	if err := deleteRecords(tx, keys); err != nil {
		return err
	}
	if damaged {
		return recount(tx, st)
	}
	return nil
}

// recount recomputes every bridge's pending count from the log. A damaged
// record's bridge mask cannot be trusted, so after dropping one the counts
// are rebuilt; damage is rare enough for a full scan.
func recount(tx *bolt.Tx, st *state) error {
	for i := range st.bridges {
		st.bridges[i].pending = 0
	}
	c := newLogCursor(tx)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if codec.Verify(v) != nil {
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		for m := codec.Bridges(v); m != 0; m &= m - 1 {
			if b := &st.bridges[bits.TrailingZeros64(m)]; b.name != "" && b.pos < seq {
				b.pending++
			}
		}
	}
	return nil
}

// evict drops at least n of the oldest messages and enough to free bytes,
// in its own transaction (used when the disk is full).
func (q *Queue) evict(n, bytes int64) error {
	return q.update(func(tx *bolt.Tx, st *state) error {
		freed, dropped := int64(0), int64(0)
		return q.dropHead(tx, st, ReasonQueueFull, func(rec []byte, _ int64) bool {
			if dropped >= n && freed >= bytes {
				return false
			}
			dropped++
			freed += int64(len(rec) + 8)
			return true
		})
	})
}

// evictSegment drops the oldest segment's messages (used when the disk is
// so full that evict fails): a segment deleted whole frees its pages and
// needs almost no fresh ones.
func (q *Queue) evictSegment() error {
	return q.update(func(tx *bolt.Tx, st *state) error {
		k, _ := newLogCursor(tx).First()
		if k == nil {
			return nil
		}
		end := segEnd(segKey(binary.BigEndian.Uint64(k)))
		return q.dropHead(tx, st, ReasonQueueFull, func(_ []byte, seq int64) bool { return uint64(seq) <= end })
	})
}

// trimAge drops messages older than MaxAge, a chunk per transaction.
func (q *Queue) trimAge() error {
	cutoff := q.now().Add(-q.opts.MaxAge).UnixMilli()
	for {
		var n int
		err := q.update(func(tx *bolt.Tx, st *state) error {
			before := st.count
			err := q.dropHead(tx, st, ReasonMaxAge, func(rec []byte, _ int64) bool {
				return codec.ReceivedAt(rec) < cutoff
			})
			n = int(before - st.count)
			return err
		})
		if err != nil || n < dropChunk {
			if n > 0 {
				q.log.Warn("dropped messages older than queue.max_age", "messages", n, "max_age", q.opts.MaxAge)
			}
			return err
		}
	}
}

// janitor applies MaxAge periodically.
func (q *Queue) janitor() {
	every := min(max(q.opts.MaxAge/100, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := q.trimAge(); err != nil {
			q.log.Error("applying queue.max_age", "error", err)
		}
		select {
		case <-t.C:
		case <-q.closing:
			return
		}
	}
}

// Bridge is one bridge's view of the queue: its position and the messages
// after it that it must forward.
type Bridge struct {
	q      *Queue
	name   string
	bit    int
	topics topicCache // for Read

	tmu     sync.Mutex
	tallies []readTally // of the Reads not yet acknowledged, in order; guarded by tmu
}

// readTally is what a Read found in the log between two positions, so that
// an Ack past them need not read those records again (it did so for every
// record, for a tenth of a drain's work). It holds while no record was
// removed meanwhile but by Acks (removals unchanged), and only when each
// record for the bridge was for no other registered bridge (solo): the
// records others need are done only once the others have passed them, and
// Ack looks at those. (The registered bridges are fixed while a Queue is
// open: register runs when it is opened.)
type readTally struct {
	from, to uint64 // the records with from < seq <= to
	removals uint64 // the queue's removals before the Read began
	mine     uint64 // records for this bridge
	bytes    uint64 // their key+value bytes
	solo     bool
}

// maxTallies bounds the tallies kept; an Ack reads what the dropped ones
// covered.
const maxTallies = 1024

// tally keeps t, read after position after, replacing tallies of records
// read before from further on (a session starting again from the durable
// position).
func (b *Bridge) tally(t readTally) {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	for len(b.tallies) > 0 && b.tallies[len(b.tallies)-1].to > t.from {
		b.tallies = b.tallies[:len(b.tallies)-1]
	}
	if len(b.tallies) == maxTallies {
		b.tallies = append(b.tallies[:0], b.tallies[1:]...)
	}
	b.tallies = append(b.tallies, t)
}

// span is a run of the log an Ack passes: counted by a Read (ok), or to be
// read.
type span struct {
	from, to    uint64
	mine, bytes uint64
	ok          bool
}

// plan cuts (from, to] into spans, taking the tallies that hold for the
// queue's removals now; tallies passed are let go.
func (b *Bridge) plan(from, to, removals uint64) []span {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	var out []span
	pos, i := from, 0
	for ; i < len(b.tallies) && pos < to; i++ {
		t := &b.tallies[i]
		if t.to <= pos {
			continue
		}
		if t.from > pos {
			end := min(t.from, to)
			out = append(out, span{from: pos, to: end})
			if pos = end; pos == to {
				break
			}
		}
		if t.from == pos && t.to <= to && t.solo && t.removals == removals {
			out = append(out, span{from: pos, to: t.to, mine: t.mine, bytes: t.bytes, ok: true})
			pos = t.to
			continue
		}
		end := min(t.to, to)
		out = append(out, span{from: pos, to: end})
		if pos = end; end < t.to {
			break // the rest of this tally is for a later Ack, which reads it
		}
	}
	if pos < to {
		out = append(out, span{from: pos, to: to})
	}
	for i < len(b.tallies) && b.tallies[i].to <= to {
		i++
	}
	b.tallies = append(b.tallies[:0], b.tallies[i:]...)
	return out
}

// Bridge returns the handle of a bridge named in Options.Bridges.
func (q *Queue) Bridge(name string) (*Bridge, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.st.bridges {
		if q.st.bridges[i].name == name {
			return &Bridge{q: q, name: name, bit: i}, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownBridge, name)
}

// Mask is the bit that marks a message for this bridge.
func (b *Bridge) Mask() uint64 { return 1 << b.bit }

// Name is the bridge's name.
func (b *Bridge) Name() string { return b.name }

// Position is the durable position: every message for this bridge with a
// sequence number up to it has been acknowledged.
func (b *Bridge) Position() uint64 {
	b.q.mu.Lock()
	defer b.q.mu.Unlock()
	return b.q.st.bridges[b.bit].pos
}

// Pending is the number of messages waiting for this bridge.
func (b *Bridge) Pending() uint64 {
	b.q.mu.Lock()
	defer b.q.mu.Unlock()
	return b.q.st.bridges[b.bit].pending
}

// Read returns, in order, up to max messages for this bridge with sequence
// numbers above after, stopping before maxBytes of records are gathered (at
// least one message is returned). next is the last sequence number
// examined: records up to it that are not for this bridge can be skipped
// with Ack(next) once the returned messages are acknowledged. A damaged
// record is dropped (counted as corrupt) and skipped.
//
// Each payload is a copy of its own, exactly its size (a message may be
// held in a bridge's window long after the rest of its batch is gone); a
// topic read before is shared.
func (b *Bridge) Read(after uint64, max, maxBytes int) (msgs []Message, next uint64, err error) {
	return b.ReadAppend(nil, after, max, maxBytes)
}

// ReadAppend is Read appending the messages to dst, so that a forwarder
// reading batch after batch reuses one slice. The payloads of the messages
// in dst's spare capacity, those read the last time, are reused for the
// new ones when large enough and at most ReuseMax bytes: a caller that
// still holds them clears them first.
func (b *Bridge) ReadAppend(dst []Message, after uint64, max, maxBytes int) (msgs []Message, next uint64, err error) {
	msgs, next = dst, after
	max += len(dst)
	scanLimit := max * 16 // bound the work spent skipping other bridges' records
	var bad []uint64
	t := readTally{from: after, removals: b.q.removals.Load(), solo: true}
	reg := b.q.registered()
	b.topics.mu.Lock() // once per batch, not per message
	err = b.q.view(func(tx *bolt.Tx) error {
		c := newLogCursor(tx)
		size := 0
		var r codec.View
		for k, v := c.Seek(after + 1); k != nil && len(msgs) < max && scanLimit > 0; k, v = c.Next() {
			scanLimit--
			seq := binary.BigEndian.Uint64(k)
			if codec.Verify(v) != nil {
				bad = append(bad, seq)
				next = seq
				continue
			}
			if codec.Bridges(v)&(1<<b.bit) == 0 {
				next = seq
				continue
			}
			if len(msgs) > len(dst) && size+len(v) > maxBytes {
				break
			}
			if err := codec.Parse(v, &r); err != nil {
				bad = append(bad, seq)
				next = seq
				continue
			}
			size += len(v)
			t.mine++
			t.bytes += uint64(len(k) + len(v))
			t.solo = t.solo && r.Bridges&reg == 1<<b.bit
			var payload []byte // bbolt's bytes are the transaction's
			if n := len(msgs); n < cap(msgs) {
				if old := msgs[:n+1][n].Payload; cap(old) >= len(r.Payload) && cap(old) <= ReuseMax {
					payload = old[:len(r.Payload)]
				}
			}
			if payload == nil {
				payload = make([]byte, len(r.Payload)) // not nil when empty: an empty payload is not a missing one
			}
			copy(payload, r.Payload)
			msgs = append(msgs, Message{Seq: seq, Topic: b.topics.intern(r.Topic), Payload: payload,
				QoS: r.QoS, Retain: r.Retain, ReceivedAt: time.UnixMilli(r.ReceivedAt), Bridges: r.Bridges, Props: r.Props})
			next = seq
		}
		b.q.shed(tx) // the payloads are copies: let go of the pages read now, not at the releaser's next pass
		return nil
	})
	b.topics.mu.Unlock()
	if err == nil && len(bad) > 0 {
		err = b.q.dropCorrupt(bad)
	}
	if err == nil && len(bad) == 0 && next > after {
		t.to = next
		b.tally(t)
	}
	return msgs, next, err
}

// ReuseMax is the largest payload buffer ReadAppend reuses: reused ones
// stay with the slice, one per message of a batch.
const ReuseMax = 4 << 10

// topicCache hands out one string per topic, for the few topics a gateway's
// sensors publish to; it forgets them all once it holds too many.
type topicCache struct {
	mu sync.Mutex // held by Read
	m  map[string]string
}

func (c *topicCache) intern(b []byte) string {
	if s, ok := c.m[string(b)]; ok {
		return s
	}
	if c.m == nil || len(c.m) >= 4096 {
		c.m = make(map[string]string)
	}
	s := string(b)
	c.m[s] = s
	return s
}

// Ack records that the bridge is done with every message up to seq, in one
// transaction: each such message that no other bridge still needs is gone
// from the counters at once, and from the file with its segment (see
// release). The records the bridge's Reads tallied are not read again.
func (b *Bridge) Ack(seq uint64) error {
	return b.q.update(func(tx *bolt.Tx, st *state) error {
		bs := &st.bridges[b.bit]
		if seq <= bs.pos {
			return nil
		}
		if seq > st.seq {
			return fmt.Errorf("storage: ack of %d beyond the last sequence number %d", seq, st.seq)
		}
		from := bs.pos
		bs.pos = seq
		for _, sp := range b.plan(from, seq, b.q.removals.Load()) {
			if sp.ok {
				// Each record for this bridge alone: done now.
				bs.pending -= min(bs.pending, sp.mine)
				st.count -= sp.mine
				st.bytes -= sp.bytes
				continue
			}
			b.q.account(tx, st, b.bit, sp.from, sp.to)
		}
		return b.q.release(tx, st, from, seq)
	})
}

// account takes the records with from < seq <= to off bridge bit's pending
// count, and off the log's counts those no bridge needs any more.
func (q *Queue) account(tx *bolt.Tx, st *state, bit int, from, to uint64) {
	bs := &st.bridges[bit]
	c := newLogCursor(tx)
	n := 0
	for k, v := c.Seek(from + 1); k != nil; k, v = c.Next() {
		s := binary.BigEndian.Uint64(k)
		if s > to {
			break
		}
		if n++; n%shedEvery == 0 {
			q.shed(tx)
		}
		q.accounted++
		if codec.Verify(v) != nil {
			continue // Read drops it
		}
		mask := codec.Bridges(v)
		if mask&(1<<bit) == 0 {
			continue
		}
		if bs.pending > 0 {
			bs.pending--
		}
		if st.done(mask, s) {
			st.count--
			st.bytes -= uint64(len(k) + len(v))
		}
	}
}

// registered is the mask of the registered bridges.
func (q *Queue) registered() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st.registered()
}

func (q *Queue) dropCorrupt(seqs []uint64) error {
	q.log.Error("dropping damaged queue records", "messages", len(seqs), "first_seq", seqs[0])
	return q.update(func(tx *bolt.Tx, st *state) error {
		q.removing = true
		var keys [][]byte
		for _, s := range seqs {
			k := seqKey(s)
			sb := tx.Bucket(segKey(s))
			if sb == nil {
				continue
			}
			v := sb.Get(k)
			if v == nil {
				continue
			}
			st.dropped[reasonIndex(ReasonCorrupt)]++
			st.count--
			st.bytes -= uint64(len(k) + len(v))
			keys = append(keys, k)
		}
		if err := deleteRecords(tx, keys); err != nil {
			return err
		}
		return recount(tx, st)
	})
}

func message(seq uint64, r *codec.Record) Message {
	return Message{Seq: seq, Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		ReceivedAt: time.UnixMilli(r.ReceivedAt), Bridges: r.Bridges, Props: r.Props}
}

// Peek returns up to n messages from the head of the log, for inspection.
func (q *Queue) Peek(n int) ([]Message, error) {
	var msgs []Message
	err := q.view(func(tx *bolt.Tx) error {
		st := q.stats()
		c := newLogCursor(tx)
		for k, v := c.First(); k != nil && len(msgs) < n; k, v = c.Next() {
			if codec.Verify(v) == nil && st.done(codec.Bridges(v), binary.BigEndian.Uint64(k)) {
				continue // gone, not yet deleted
			}
			var r codec.Record
			if err := codec.Decode(v, &r); err != nil {
				msgs = append(msgs, Message{Seq: binary.BigEndian.Uint64(k), Topic: "<damaged: " + err.Error() + ">"})
				continue
			}
			msgs = append(msgs, message(binary.BigEndian.Uint64(k), &r))
		}
		return nil
	})
	return msgs, err
}

// BridgeStats is one registered bridge's state.
type BridgeStats struct {
	Name       string
	Position   uint64
	Pending    uint64
	Configured bool
}

// Stats is a snapshot of the queue's counters.
type Stats struct {
	Messages uint64
	Bytes    uint64
	LastSeq  uint64
	Oldest   time.Time // zero when empty
	Dropped  map[string]uint64
	Rejected uint64 // QoS>0 messages refused since open (not stored, not acknowledged)
	Commits  uint64 // append commits (each one fsync) since open
	Appended uint64 // messages those commits stored
	Bridges  []BridgeStats
}

func (q *Queue) stats() state {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st
}

// Stats returns the queue's counters. It reads one record (the oldest), not
// the log.
func (q *Queue) Stats() (Stats, error) {
	q.mu.Lock()
	st, rejected, commits, appended := q.st, q.rejected, q.commits, q.appended
	q.mu.Unlock()
	s := Stats{Messages: st.count, Bytes: st.bytes, LastSeq: st.seq, Rejected: rejected, Commits: commits, Appended: appended,
		Dropped: make(map[string]uint64, len(reasons))}
	for i, r := range reasons {
		s.Dropped[r] = st.dropped[i]
	}
	configured := make(map[string]bool, len(q.opts.Bridges))
	for _, n := range q.opts.Bridges {
		configured[n] = true
	}
	for _, b := range st.bridges {
		if b.name != "" {
			s.Bridges = append(s.Bridges, BridgeStats{Name: b.name, Position: b.pos, Pending: b.pending, Configured: configured[b.name]})
		}
	}
	err := q.view(func(tx *bolt.Tx) error {
		c := newLogCursor(tx)
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if codec.Verify(v) != nil {
				return nil
			}
			if !st.done(codec.Bridges(v), binary.BigEndian.Uint64(k)) {
				s.Oldest = time.UnixMilli(codec.ReceivedAt(v))
				return nil
			}
		}
		return nil
	})
	return s, err
}

// Changed returns a channel that is closed when a message is next committed.
func (b *Bridge) Changed() <-chan struct{} { return b.q.Changed() }
