package storage

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/storage/internal/codec"
)

// records counts the records stored in the file, dead or alive, and the
// segments holding them.
func records(t testing.TB, q *Queue) (recs, segs int) {
	t.Helper()
	err := q.view(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		for k, _ := c.Seek([]byte{segPrefix}); isSeg(k); k, _ = c.Next() {
			segs++
			recs += tx.Bucket(k).Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, segs
}

// TestAckDeletesSegments: acknowledged records leave the counters at once
// and the file with their segment; Peek and Stats never show them.
func TestAckDeletesSegments(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"b"}})
	b, _ := q.Bridge("b")
	n := 3*segSize + segSize/2
	var last uint64
	for i := range n {
		last = enqueue(t, q, "t", b.Mask(), fmt.Sprint(i))
	}
	first := last - uint64(n) + 1
	if recs, segs := records(t, q); recs != n || segs < 4 {
		t.Fatalf("%d records in %d segments, want %d in at least 4", recs, segs, n)
	}

	// Into the middle of the second segment: the first goes, the second
	// keeps its dead records until the position passes its end.
	mid := (first>>segShift+1)<<segShift + segSize/2
	if err := b.Ack(mid); err != nil {
		t.Fatal(err)
	}
	st, _ := q.Stats()
	if want := last - mid; st.Messages != want || b.Pending() != want {
		t.Fatalf("after ack %d: %d messages, %d pending; want %d", mid, st.Messages, b.Pending(), want)
	}
	if recs, _ := records(t, q); uint64(recs) != last-mid>>segShift<<segShift+1 {
		t.Fatalf("after ack %d: %d records stored, want the live ones and the second segment's dead ones", mid, recs)
	}
	peek, err := q.Peek(1)
	if err != nil || len(peek) != 1 || peek[0].Seq != mid+1 {
		t.Fatalf("Peek after the ack = %+v, %v; want seq %d", peek, err, mid+1)
	}
	msgs, _, _ := b.Read(b.Position(), 1, 1<<20)
	if len(msgs) != 1 || msgs[0].Seq != mid+1 {
		t.Fatalf("Read after the ack = %+v; want seq %d", msgs, mid+1)
	}

	// All of it: nothing stays in the file, not even the last segment.
	if err := b.Ack(last); err != nil {
		t.Fatal(err)
	}
	if recs, segs := records(t, q); recs != 0 || segs != 0 {
		t.Fatalf("after acking everything: %d records in %d segments", recs, segs)
	}
	if st, _ := q.Stats(); st.Messages != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("after acking everything: %+v", st)
	}
	// The log goes on in a segment made anew.
	if seq := enqueue(t, q, "t", b.Mask(), "again"); seq != last+1 {
		t.Fatalf("next seq %d, want %d", seq, last+1)
	}
}

// TestLaggingBridgeKeepsOnlyItsRecords: a bridge that is down holds back
// its own records, not the file space of the others' records around them.
func TestLaggingBridgeKeepsOnlyItsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, Options{Bridges: []string{"up", "down"}})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := q.Bridge("up")
	down, _ := q.Bridge("down")
	n := 3 * segSize
	var last uint64
	for i := range n {
		mask := up.Mask()
		if i%10 == 0 {
			mask |= down.Mask()
		}
		last = enqueue(t, q, "t", mask, fmt.Sprint(i))
	}
	if err := up.Ack(last); err != nil {
		t.Fatal(err)
	}
	// Stored: down's, and up's dead ones in the segment of the log's end
	// (passed by nobody yet).
	st, _ := q.Stats()
	recs, _ := records(t, q)
	want := (n + 9) / 10
	if st.Messages != uint64(want) || recs < want || recs > want+segSize {
		t.Fatalf("after up's ack: %d messages, %d records stored; want %d, only down's (and the last segment's)", st.Messages, recs, want)
	}
	if o := st.Oldest; o.IsZero() || time.Since(o) > time.Minute {
		t.Fatalf("Oldest = %v", o)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)

	// down is taken out of the config: its records stay (they are
	// pending), and when it comes back and catches up, everything goes.
	q, err = Open(path, Options{Bridges: []string{"up"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Messages != uint64(want) {
		t.Fatalf("down's messages after it left the config: %d, want %d", st.Messages, want)
	}
	q.Close()
	q, err = Open(path, Options{Bridges: []string{"up", "down"}})
	if err != nil {
		t.Fatal(err)
	}
	down, _ = q.Bridge("down")
	half := last - uint64(n)/2
	if err := down.Ack(half); err != nil {
		t.Fatal(err)
	}
	q.Close()
	checkFile(t, path)

	// Its slot is freed while it still sits in a segment's middle: the
	// dead records it kept go at the next open.
	q, err = Open(path, Options{Bridges: []string{"down"}})
	if err != nil {
		t.Fatal(err)
	}
	down, _ = q.Bridge("down")
	if err := down.Ack(last); err != nil {
		t.Fatal(err)
	}
	if recs, segs := records(t, q); recs != 0 || segs != 0 {
		t.Fatalf("after both caught up: %d records in %d segments", recs, segs)
	}
	q.Close()
	checkFile(t, path)
}

// TestFreedSlotReleasesDeadRecords: records done for every bridge but kept
// for one that stopped in a segment's middle are deleted when the queue
// next opens without it (its slot freed: nothing pending).
func TestFreedSlotReleasesDeadRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, Options{Bridges: []string{"a", "x"}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := q.Bridge("a")
	x, _ := q.Bridge("x")
	var shared, last uint64
	for i := range segSize / 2 {
		shared = enqueue(t, q, "t", a.Mask()|x.Mask(), fmt.Sprint(i))
	}
	for i := range segSize {
		last = enqueue(t, q, "t", a.Mask(), fmt.Sprint(i))
	}
	if err := a.Ack(last); err != nil {
		t.Fatal(err)
	}
	// x forwards its last message and stops there, in the first segment.
	if err := x.Ack(shared); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Messages != 0 {
		t.Fatalf("%d messages after both acked all theirs", st.Messages)
	}
	if recs, _ := records(t, q); recs < segSize/2 {
		t.Fatalf("%d records stored; the segment x has not passed should keep its dead ones", recs)
	}
	q.Close()
	checkFile(t, path)

	q, err = Open(path, Options{Bridges: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Bridge("x"); err == nil {
		t.Fatal("x kept its slot with nothing pending")
	}
	if recs, segs := records(t, q); recs != 0 || segs != 0 {
		t.Fatalf("%d records in %d segments once x's slot was freed", recs, segs)
	}
	q.Close()
	checkFile(t, path)
}

// writeFlatQueue writes a queue file in the layout of outpost before the
// log was cut into segments: every record in one bucket, "log".
func writeFlatQueue(t *testing.T, path string, n int, st state) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		lb, err := tx.CreateBucket(logBucket)
		if err != nil {
			return err
		}
		mb, err := tx.CreateBucket(metaBucket)
		if err != nil {
			return err
		}
		for i := 1; i <= n; i++ {
			r := codec.Record{Topic: "sensors/t", Payload: []byte(fmt.Sprint(i)), QoS: 1, Bridges: 1, ReceivedAt: int64(i)}
			rec := codec.Append(nil, &r)
			if err := lb.Put(seqKey(uint64(i)), rec); err != nil {
				return err
			}
			st.count++
			st.bytes += uint64(8 + len(rec))
		}
		st.seq = uint64(n)
		st.bridges[0].pending = uint64(n)
		return mb.Put(stateKey, st.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenConvertsFlatLog: a queue file of an earlier version is converted
// when opened, losing nothing; the inspection commands ask for that first.
func TestOpenConvertsFlatLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	n := 2*dropChunk + 123 // more than one conversion step
	writeFlatQueue(t, path, n, state{bridges: [maxBridges]bridgeState{{name: "b"}}})

	if _, err := OpenReadOnly(path, Options{}); err == nil || !strings.Contains(err.Error(), "earlier version") {
		t.Fatalf("OpenReadOnly of the old layout: %v", err)
	}
	q, err := Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := q.Bridge("b")
	if st, _ := q.Stats(); st.Messages != uint64(n) || b.Pending() != uint64(n) || st.LastSeq != uint64(n) {
		t.Fatalf("after conversion: %+v, pending %d", st, b.Pending())
	}
	var got int
	for pos := b.Position(); ; {
		msgs, next, err := b.Read(pos, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			got++
			if m.Seq != uint64(got) || string(m.Payload) != fmt.Sprint(got) {
				t.Fatalf("message %d read as seq %d payload %q", got, m.Seq, m.Payload)
			}
		}
		pos = next
	}
	if got != n {
		t.Fatalf("read %d messages, want %d", got, n)
	}
	err = q.view(func(tx *bolt.Tx) error {
		if tx.Bucket(logBucket) != nil {
			return fmt.Errorf("the old bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seq := enqueue(t, q, "t", b.Mask(), "new"); seq != uint64(n)+1 {
		t.Fatalf("next seq %d, want %d", seq, n+1)
	}
	q.Close()
	checkFile(t, path)
}

// TestConversionResumes: a conversion cut short (some records moved, some
// not) finishes at the next open.
func TestConversionResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	n := dropChunk + 50
	writeFlatQueue(t, path, n, state{bridges: [maxBridges]bridgeState{{name: "b"}}})
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One step of it, as if the process died after the first commit.
	err = db.Update(func(tx *bolt.Tx) error {
		w := newSegWriter(tx)
		c := tx.Bucket(logBucket).Cursor()
		var keys [][]byte
		for k, v := c.First(); k != nil && len(keys) < 100; k, v = c.Next() {
			if err := w.put(binary.BigEndian.Uint64(k), v); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		for _, k := range keys {
			if err := tx.Bucket(logBucket).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := q.Peek(n + 10)
	if len(msgs) != n || msgs[0].Seq != 1 || msgs[n-1].Seq != uint64(n) {
		t.Fatalf("after the resumed conversion Peek sees %d messages", len(msgs))
	}
	q.Close()
	checkFile(t, path)
}
