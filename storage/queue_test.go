package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/storage/internal/codec"
)

// mustOpen opens a queue in t.TempDir() and, when the test ends, closes it
// and checks the file: bbolt's own consistency check plus every counter of
// the state record against a full scan of the log.
func mustOpen(t testing.TB, opts Options) (*Queue, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, path)
	})
	return q, path
}

func checkFile(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("reopening for check: %v", err)
		return
	}
	defer db.Close()
	if err := db.View(checkTx); err != nil {
		t.Errorf("queue file check: %v", err)
	}
}

// checkTx checks bbolt's consistency and every counter of the state record
// against a full scan of the log.
func checkTx(tx *bolt.Tx) error {
	for err := range tx.Check() {
		return err
	}
	return checkCounts(tx)
}

// checkCounts checks every counter of the state record against a full
// scan of the log.
func checkCounts(tx *bolt.Tx) error {
	var st state
	if err := st.unmarshal(tx.Bucket(metaBucket).Get(stateKey)); err != nil {
		return err
	}
	var count, size uint64
	var pending [maxBridges]uint64
	c := newLogCursor(tx)
	err := error(nil)
	for k, v := c.First(); k != nil && err == nil; k, v = c.Next() {
		err = func() error {
			seq := binary.BigEndian.Uint64(k)
			if seq > st.seq {
				return fmt.Errorf("record %d above last seq %d", seq, st.seq)
			}
			if codec.Verify(v) != nil {
				count++
				size += uint64(len(k) + len(v))
				return nil
			}
			if st.done(codec.Bridges(v), seq) {
				// Gone from the counters; its segment must still be
				// needed by a bridge that has not passed its end.
				end := segEnd(segKey(seq))
				for _, b := range st.bridges {
					if b.name != "" && b.pos < end {
						return nil
					}
				}
				return fmt.Errorf("record %d is done for every bridge, and its segment passed, but still stored", seq)
			}
			count++
			size += uint64(len(k) + len(v))
			for m := codec.Bridges(v); m != 0; m &= m - 1 {
				i := bits.TrailingZeros64(m)
				if st.bridges[i].name != "" && st.bridges[i].pos < seq {
					pending[i]++
				}
			}
			return nil
		}()
	}
	if err != nil {
		return err
	}
	if count != st.count || size != st.bytes {
		return fmt.Errorf("state says %d messages / %d bytes, log has %d / %d", st.count, st.bytes, count, size)
	}
	for i, b := range st.bridges {
		if b.name != "" && b.pending != pending[i] {
			return fmt.Errorf("bridge %s: state says %d pending, log has %d", b.name, b.pending, pending[i])
		}
	}
	return nil
}

func enqueue(t testing.TB, q *Queue, topic string, mask uint64, payload string) uint64 {
	t.Helper()
	tk, err := q.Enqueue(context.Background(), &Message{Topic: topic, Payload: []byte(payload), QoS: 1, Bridges: mask})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	seq, err := tk.Wait(context.Background())
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return seq
}

func TestGroupCommitConcurrentPublishers(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"cloud"}})
	const writers, each = 8, 500
	seqs := make(chan uint64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			// Each writer keeps many messages in flight, as a pipelining client does.
			var tickets []*Ticket
			for i := range each {
				tk, err := q.Enqueue(t.Context(), &Message{Topic: fmt.Sprintf("s/%d", w), Payload: []byte{byte(i)}, QoS: 1, Bridges: 1})
				if err != nil {
					t.Error(err)
					return
				}
				tickets = append(tickets, tk)
			}
			prev := uint64(0)
			for _, tk := range tickets {
				seq, err := tk.Wait(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				if seq <= prev {
					t.Errorf("writer %d: seq %d after %d: a writer's messages must keep their order", w, seq, prev)
				}
				prev = seq
				seqs <- seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d assigned twice", s)
		}
		seen[s] = true
	}
	for s := uint64(1); s <= writers*each; s++ {
		if !seen[s] {
			t.Fatalf("gap: seq %d not assigned", s)
		}
	}
	st, _ := q.Stats()
	if st.Messages != writers*each || st.Appended != writers*each {
		t.Fatalf("stats: %d messages, %d appended, want %d", st.Messages, st.Appended, writers*each)
	}
	if st.Commits >= st.Appended {
		t.Fatalf("%d commits for %d messages: concurrent messages must share commits", st.Commits, st.Appended)
	}
	t.Logf("%d messages in %d commits", st.Appended, st.Commits)
}

func TestReopenKeepsMessagesAndSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		enqueue(t, q, "a", 1, fmt.Sprint(i))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	q, err = Open(path, Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if seq := enqueue(t, q, "a", 1, "next"); seq != 11 {
		t.Fatalf("seq after reopen = %d, want 11", seq)
	}
	b, _ := q.Bridge("cloud")
	msgs, _, err := b.Read(0, 100, 1<<20)
	if err != nil || len(msgs) != 11 {
		t.Fatalf("Read = %d messages, %v; want 11", len(msgs), err)
	}
	for i, m := range msgs[:10] {
		if string(m.Payload) != fmt.Sprint(i) || m.Seq != uint64(i+1) || m.Topic != "a" || m.QoS != 1 {
			t.Fatalf("message %d = %+v", i, m)
		}
	}
}

func TestBridgesShareRecords(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"cloud", "lake"}})
	cloud, _ := q.Bridge("cloud")
	lake, _ := q.Bridge("lake")
	both := cloud.Mask() | lake.Mask()
	enqueue(t, q, "x", cloud.Mask(), "c1")
	enqueue(t, q, "x", both, "b2")
	enqueue(t, q, "x", lake.Mask(), "l3")
	enqueue(t, q, "x", both, "b4")

	if cloud.Pending() != 3 || lake.Pending() != 3 {
		t.Fatalf("pending cloud=%d lake=%d, want 3 and 3", cloud.Pending(), lake.Pending())
	}
	msgs, next, err := cloud.Read(cloud.Position(), 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := payloads(msgs); got != "c1,b2,b4" || next != 4 {
		t.Fatalf("cloud reads %s (next %d), want c1,b2,b4 (next 4)", got, next)
	}
	// cloud is done with everything; the shared records wait for lake.
	if err := cloud.Ack(next); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Messages != 3 {
		t.Fatalf("after cloud's ack %d messages stored, want 3 (b2, l3, b4 for lake)", st.Messages)
	}
	msgs, next, _ = lake.Read(lake.Position(), 2, 1<<20)
	if got := payloads(msgs); got != "b2,l3" {
		t.Fatalf("lake reads %s, want b2,l3", got)
	}
	if err := lake.Ack(next); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Messages != 1 || lake.Pending() != 1 || cloud.Pending() != 0 {
		t.Fatalf("after lake's partial ack: %d stored, lake pending %d, cloud pending %d; want 1, 1, 0", st.Messages, lake.Pending(), cloud.Pending())
	}
	// A bridge that is down holds back no other: cloud keeps reading new messages.
	enqueue(t, q, "x", cloud.Mask(), "c5")
	msgs, _, _ = cloud.Read(cloud.Position(), 10, 1<<20)
	if got := payloads(msgs); got != "c5" {
		t.Fatalf("cloud reads %s, want c5", got)
	}
	if err := cloud.Ack(99); err == nil {
		t.Fatal("Ack beyond the last seq accepted")
	}
}

func TestReadSkipsAndBounds(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"a", "b"}})
	a, _ := q.Bridge("a")
	b, _ := q.Bridge("b")
	for i := range 100 {
		enqueue(t, q, "t", b.Mask(), fmt.Sprint(i))
	}
	// Nothing for a: Read examines a bounded stretch and reports how far it got.
	msgs, next, err := a.Read(0, 2, 1<<20)
	if err != nil || len(msgs) != 0 || next == 0 || next > 100 {
		t.Fatalf("a.Read = %d msgs, next %d, %v", len(msgs), next, err)
	}
	if err := a.Ack(next); err != nil {
		t.Fatal(err)
	}
	// maxBytes stops a batch but always returns at least one message.
	msgs, _, _ = b.Read(0, 100, 1)
	if len(msgs) != 1 {
		t.Fatalf("Read with maxBytes 1 = %d messages, want 1", len(msgs))
	}
}

// TestReadKeepsOnlyItsBytes: the payloads Read returns are copies, each
// exactly as long as its capacity, together no larger than the messages: a
// live message read alone, and held in a bridge's window until the upstream
// acknowledges it, holds on to nothing more.
func TestReadKeepsOnlyItsBytes(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"a"}})
	a, _ := q.Bridge("a")
	for _, p := range []string{"one", "", "three33"} {
		enqueue(t, q, "t", a.Mask(), p)
	}
	msgs, _, err := a.Read(0, 100, 1<<20)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("Read = %d messages, %v", len(msgs), err)
	}
	for i, want := range []string{"one", "", "three33"} {
		if p := msgs[i].Payload; string(p) != want || cap(p) != len(p) {
			t.Fatalf("message %d: payload %q (cap %d), want %q with no room after it", i, p, cap(p), want)
		}
	}
	// Writing one message's payload touches no other.
	msgs[0].Payload = append(msgs[0].Payload, "-more"...)
	msgs[0].Payload[0] = 'X'
	if string(msgs[2].Payload) != "three33" {
		t.Fatalf("message 2's payload changed to %q", msgs[2].Payload)
	}
	msgs, _, _ = a.Read(2, 100, 1<<20) // the last alone
	if len(msgs) != 1 || cap(msgs[0].Payload) != len("three33") {
		t.Fatalf("Read of one message: %d messages, payload cap %d", len(msgs), cap(msgs[0].Payload))
	}
	// Nor is anything sized for a whole batch allocated for it (a buffer
	// of max messages or maxBytes would be held as long as the message).
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 10 {
		a.Read(2, 1000, 1<<20)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 16<<10 {
		t.Fatalf("reading one message allocates %d bytes", per)
	}
}

// TestReadAppendReusesPayloads: the payloads of the messages in dst's spare
// capacity are reused for the next read when large enough and at most
// ReuseMax bytes; cleared ones, and bigger ones, are not.
func TestReadAppendReusesPayloads(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"a"}})
	a, _ := q.Bridge("a")
	big := strings.Repeat("b", ReuseMax+1)
	for _, p := range []string{"first-12", "second-1", big, "x", "y", big, "zz"} {
		enqueue(t, q, "t", a.Mask(), p)
	}
	msgs, _, err := a.ReadAppend(nil, 0, 3, 1<<20)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("ReadAppend = %d messages, %v", len(msgs), err)
	}
	first := [3]*byte{&msgs[0].Payload[0], &msgs[1].Payload[0], &msgs[2].Payload[0]}
	msgs, _, err = a.ReadAppend(msgs[:0], 3, 3, 1<<20)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("ReadAppend = %d messages, %v", len(msgs), err)
	}
	for i, want := range []string{"x", "y", big} {
		if string(msgs[i].Payload) != want {
			t.Fatalf("message %d: payload of %d bytes, want %d", i, len(msgs[i].Payload), len(want))
		}
	}
	if &msgs[0].Payload[0] != first[0] || &msgs[1].Payload[0] != first[1] {
		t.Fatal("the small payloads of the last read were not reused")
	}
	if &msgs[2].Payload[0] == first[2] {
		t.Fatalf("a payload of %d bytes, over ReuseMax, was reused", len(big))
	}
	clear(msgs)
	msgs, _, _ = a.ReadAppend(msgs[:0], 6, 3, 1<<20)
	if len(msgs) != 1 || string(msgs[0].Payload) != "zz" || cap(msgs[0].Payload) != 2 {
		t.Fatalf("after clear: %d messages, payload cap %d", len(msgs), cap(msgs[0].Payload))
	}
}

// TestReadEmptyPayloadNotNil: an empty payload reads as an empty slice,
// not nil (a Kafka record with a nil value is a null, a tombstone), also
// when a read reuses buffers and after they were cleared.
func TestReadEmptyPayloadNotNil(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"a"}})
	a, _ := q.Bridge("a")
	for _, p := range []string{"", "a", ""} {
		enqueue(t, q, "t", a.Mask(), p)
	}
	var msgs []Message
	for _, clearFirst := range []bool{false, false, true} {
		if clearFirst {
			clear(msgs)
		}
		var err error
		if msgs, _, err = a.ReadAppend(msgs[:0], 0, 10, 1<<20); err != nil || len(msgs) != 3 {
			t.Fatalf("ReadAppend = %d messages, %v", len(msgs), err)
		}
		for i, m := range msgs {
			if m.Payload == nil {
				t.Fatalf("message %d: nil payload (cleared first: %v)", i, clearFirst)
			}
		}
	}
}

func TestRemovedBridgeKeepsBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	cloud, _ := q.Bridge("cloud")
	enqueue(t, q, "x", cloud.Mask(), "kept")
	q.Close()

	// The bridge is taken out of the config: its message must stay.
	q, err = Open(path, Options{Bridges: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Bridge("cloud"); err != nil {
		t.Fatalf("a removed bridge with pending messages lost its slot: %v", err)
	}
	other, _ := q.Bridge("other")
	if other.Mask() == cloud.Mask() {
		t.Fatal("a new bridge got the slot of one that still has messages")
	}
	st, _ := q.Stats()
	if st.Messages != 1 || len(st.Bridges) != 2 || st.Bridges[0].Configured {
		t.Fatalf("stats = %+v", st)
	}
	q.Close()

	// It comes back and resumes where it was.
	q, err = Open(path, Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	cloud, _ = q.Bridge("cloud")
	msgs, next, _ := cloud.Read(cloud.Position(), 10, 1<<20)
	if payloads(msgs) != "kept" {
		t.Fatalf("returning bridge reads %q, want kept", payloads(msgs))
	}
	cloud.Ack(next)
	q.Close()
	checkFile(t, path)
}

func TestMaxBytesDropOldest(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"b"}, MaxBytes: 2000})
	for i := range 100 {
		enqueue(t, q, "topic", 1, fmt.Sprintf("message-%03d", i))
	}
	st, _ := q.Stats()
	if st.Bytes > 2000 {
		t.Fatalf("queue holds %d bytes, cap 2000", st.Bytes)
	}
	if st.Dropped[ReasonQueueFull] == 0 || st.Dropped[ReasonQueueFull]+st.Messages != 100 {
		t.Fatalf("%d kept + %d dropped as queue_full != 100", st.Messages, st.Dropped[ReasonQueueFull])
	}
	b, _ := q.Bridge("b")
	msgs, _, _ := b.Read(b.Position(), 1000, 1<<20)
	if string(msgs[len(msgs)-1].Payload) != "message-099" || uint64(len(msgs)) != st.Messages {
		t.Fatal("drop_oldest must keep the newest messages")
	}
	if b.Pending() != st.Messages {
		t.Fatalf("pending %d != messages %d", b.Pending(), st.Messages)
	}
}

func TestMaxBytesRejectNew(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"b"}, MaxBytes: 1000, WhenFull: RejectNew})
	var refused int
	for i := range 50 {
		tk, err := q.Enqueue(t.Context(), &Message{Topic: "topic", Payload: []byte(fmt.Sprintf("message-%03d", i)), QoS: 1, Bridges: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(t.Context()); errors.Is(err, ErrFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	tk, _ := q.Enqueue(t.Context(), &Message{Topic: "topic", Payload: []byte("qos0"), Bridges: 1})
	if _, err := tk.Wait(t.Context()); !errors.Is(err, ErrFull) {
		t.Fatalf("QoS 0 into a full queue: %v, want ErrFull", err)
	}
	st, _ := q.Stats()
	if refused == 0 || st.Rejected != uint64(refused) || st.Messages+uint64(refused) != 50 {
		t.Fatalf("refused %d, stats %+v", refused, st)
	}
	if st.Dropped[ReasonQueueFull] != 1 {
		t.Fatalf("a refused QoS 0 message is lost and must count as dropped; got %d", st.Dropped[ReasonQueueFull])
	}
	b, _ := q.Bridge("b")
	msgs, _, _ := b.Read(0, 1000, 1<<20)
	if string(msgs[0].Payload) != "message-000" {
		t.Fatal("reject_new must keep the oldest messages")
	}
}

func TestMaxAge(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	q, _ := mustOpen(t, Options{Bridges: []string{"b"}, MaxAge: time.Hour, Now: clock})
	for i := range 5 {
		enqueue(t, q, "old", 1, fmt.Sprint(i))
	}
	mu.Lock()
	now = now.Add(90 * time.Minute)
	mu.Unlock()
	enqueue(t, q, "new", 1, "fresh")
	if err := q.trimAge(); err != nil {
		t.Fatal(err)
	}
	st, _ := q.Stats()
	if st.Messages != 1 || st.Dropped[ReasonMaxAge] != 5 {
		t.Fatalf("after max_age: %d messages, %d dropped; want 1 and 5", st.Messages, st.Dropped[ReasonMaxAge])
	}
	if !st.Oldest.Equal(now) {
		t.Fatalf("oldest = %v, want %v", st.Oldest, now)
	}
	b, _ := q.Bridge("b")
	if b.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", b.Pending())
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	q, err := Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 20 {
		last = enqueue(t, q, "t", 1, fmt.Sprint(i))
	}
	q.Close()

	// Destroy both meta pages.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xA5}, 2*PageSize)
	f.WriteAt(junk, 0)
	f.Close()

	var logs bytes.Buffer
	q, err = Open(path, Options{Bridges: []string{"b"}, Logger: newTestLogger(&logs)})
	if err != nil {
		t.Fatalf("Open on a corrupt file must start an empty queue, got %v", err)
	}
	defer q.Close()
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file not kept for inspection: %v", aside)
	}
	if !bytes.Contains(logs.Bytes(), []byte("QUEUE FILE CORRUPT")) {
		t.Fatalf("no loud log line: %s", logs.String())
	}
	if seq := enqueue(t, q, "t", 1, "after"); seq <= last {
		t.Fatalf("seq after recovery = %d, must stay above %d", seq, last)
	}
}

func TestCorruptRecordDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "t", 1, "first")
	enqueue(t, q, "t", 1, "UNIQUE-PAYLOAD-TO-FLIP")
	enqueue(t, q, "t", 1, "third")
	q.Close()

	// Copy-on-write leaves stale copies in freed pages: flip every copy.
	raw, _ := os.ReadFile(path)
	n := 0
	for i := bytes.Index(raw, []byte("UNIQUE-PAYLOAD-TO-FLIP")); i >= 0; i = bytes.Index(raw, []byte("UNIQUE-PAYLOAD-TO-FLIP")) {
		raw[i] ^= 0xff
		n++
	}
	if n == 0 {
		t.Fatal("payload not found in file")
	}
	os.WriteFile(path, raw, 0o600)

	q, err = Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := q.Bridge("b")
	msgs, next, err := b.Read(0, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if payloads(msgs) != "first,third" {
		t.Fatalf("read %s, want first,third", payloads(msgs))
	}
	b.Ack(next)
	st, _ := q.Stats()
	if st.Dropped[ReasonCorrupt] != 1 || st.Messages != 0 {
		t.Fatalf("stats %+v: want one corrupt drop and an empty queue", st)
	}
	q.Close()
	checkFile(t, path)
}

func TestUncleanShutdownIsChecked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	q, err := Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "t", 1, "x")
	// Copy the file while it is open: the copy is what a crash leaves.
	raw, _ := os.ReadFile(path)
	q.Close()
	crashed := filepath.Join(dir, "crashed.db")
	os.WriteFile(crashed, raw, 0o600)
	os.WriteFile(crashed+leaseSuffix, []byte("0"), 0o600)
	q, err = Open(crashed, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Messages != 1 {
		t.Fatalf("after an unclean stop %d messages, want 1", st.Messages)
	}
	q.Close()
}

func TestLockedAndReadOnly(t *testing.T) {
	q, path := mustOpen(t, Options{Bridges: []string{"b"}})
	enqueue(t, q, "t", 1, "x")
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if _, err := OpenReadOnly(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenReadOnly while open = %v, want ErrLocked", err)
	}
	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "none.db"), Options{}); err == nil {
		t.Fatal("OpenReadOnly of a missing file succeeded")
	}
}

func TestReadOnlyStatsAndPeek(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, _ := Open(path, Options{Bridges: []string{"b"}})
	enqueue(t, q, "a/b", 1, "hello")
	q.Close()
	ro, err := OpenReadOnly(path, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	st, err := ro.Stats()
	if err != nil || st.Messages != 1 || st.LastSeq != 1 || st.Oldest.IsZero() || len(st.Bridges) != 1 || st.Bridges[0].Pending != 1 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	msgs, err := ro.Peek(5)
	if err != nil || len(msgs) != 1 || msgs[0].Topic != "a/b" || string(msgs[0].Payload) != "hello" {
		t.Fatalf("Peek = %+v, %v", msgs, err)
	}
}

func TestTooManyBridges(t *testing.T) {
	names := make([]string, 65)
	for i := range names {
		names[i] = fmt.Sprint("b", i)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Bridges: names}); !errors.Is(err, ErrTooManyBridges) {
		t.Fatalf("Open with 65 bridges = %v", err)
	}
}

func TestClosedQueueRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, _ := Open(path, Options{})
	q.Close()
	if _, err := q.Enqueue(t.Context(), &Message{Topic: "t"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close = %v", err)
	}
}

func TestStateRecordRoundTrip(t *testing.T) {
	var s state
	s.dirty, s.seq, s.count, s.bytes = true, 1<<40, 7, 1234
	s.dropped = [len(reasons)]uint64{1, 2, 3}
	s.bridges[0] = bridgeState{name: "cloud", pos: 5, pending: 2}
	s.bridges[63] = bridgeState{name: "lake", pos: 1 << 35, pending: 9}
	var got state
	if err := got.unmarshal(s.marshal()); err != nil || got != s {
		t.Fatalf("state round trip: %v\n%+v\n%+v", err, got, s)
	}
	for _, bad := range [][]byte{nil, {9}, s.marshal()[:5]} {
		if err := got.unmarshal(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unmarshal(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func payloads(msgs []Message) string {
	var b bytes.Buffer
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.Payload)
	}
	return b.String()
}

// TestReleasedPagesReadBack: releasing bbolt's resident map (the releaser
// does so after transactions) loses nothing: the pages fault back in on
// reading.
func TestReleasedPagesReadBack(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"b"}})
	for i := range 2000 {
		enqueue(t, q, "t", 1, fmt.Sprintf("payload-%04d", i))
	}
	q.shedAll()
	b, _ := q.Bridge("b")
	msgs, _, err := b.Read(0, 5000, 1<<30)
	if err != nil || len(msgs) != 2000 {
		t.Fatalf("read back %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		if string(m.Payload) != fmt.Sprintf("payload-%04d", i) {
			t.Fatalf("message %d = %q after release", i, m.Payload)
		}
	}
	enqueue(t, q, "t", 1, "after") // and writing goes on
}

// TestRefusedAfterEarlyAck: with queue.sync: interval the sender was
// acknowledged before the commit, so a message the commit refuses is lost
// and must be counted as dropped, not as refused-and-kept-by-the-sender.
func TestRefusedAfterEarlyAck(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"b"}, MaxBytes: 1000, WhenFull: RejectNew})
	var lost uint64
	for i := range 30 {
		tk, err := q.Enqueue(t.Context(), &Message{Topic: "topic", Payload: []byte(fmt.Sprintf("message-%03d", i)), QoS: 1, Bridges: 1, AckedEarly: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(t.Context()); errors.Is(err, ErrFull) {
			lost++
		}
	}
	st, _ := q.Stats()
	if lost == 0 || st.Dropped[ReasonQueueFull] != lost || st.Rejected != 0 {
		t.Fatalf("%d refused after an early ack: dropped %d, rejected %d; want all counted as dropped", lost, st.Dropped[ReasonQueueFull], st.Rejected)
	}
}
