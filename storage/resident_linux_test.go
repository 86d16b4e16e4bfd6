package storage

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The map is let go of as long transactions read it, so that the queue
// file never becomes resident in this process, however long the backlog
// (promise 5). Without the sheds, all of the file a transaction reads is
// resident until the releaser runs after it.

// TestAckKeepsMapSmall: an Ack over a long drained backlog reads every
// record it passes and every page of each segment it deletes, in one
// transaction.
func TestAckKeepsMapSmall(t *testing.T) {
	q, path := mustOpen(t, Options{Bridges: []string{"b"}, MaxPending: 1 << 20})
	const n = 100_000
	fillResident(t, q, n)
	b, _ := q.Bridge("b")
	var err error
	top := peakResident(t, path, func() { err = b.Ack(n) })
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Messages != 0 {
		t.Fatalf("%d messages left after acking all", st.Messages)
	}
	checkResident(t, path, top, "during the Ack")
}

// TestOpenLeavesMapSmall: opening a queue that was not closed checks the
// whole file, reading every page; none of it stays resident once Open has
// returned, though no transaction may follow for hours. (How much is
// resident while the check runs depends on the disk: from the page cache
// it reads the file in milliseconds, before any shed.)
func TestOpenLeavesMapSmall(t *testing.T) {
	q, path := mustOpen(t, Options{Bridges: []string{"b"}, MaxPending: 1 << 20})
	const n = 100_000
	fillResident(t, q, n)
	// Copy the file while it is open: the copy is what a crash leaves.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	os.WriteFile(crashed, raw, 0o600)
	c, err := Open(crashed, Options{Bridges: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	after := residentKB(t, crashed)
	if st, _ := c.Stats(); st.Messages != n {
		t.Fatalf("%d messages after an unclean stop, want %d", st.Messages, n)
	}
	checkResident(t, crashed, after, "once Open returned after an unclean stop")
}

// fillResident queues n messages of 200 bytes (a file of over 40 MiB) and
// lets go of the map.
func fillResident(t *testing.T, q *Queue, n int) {
	t.Helper()
	payload := bytes.Repeat([]byte("x"), 200)
	var last *Ticket
	for range n {
		tk, err := q.Enqueue(context.Background(), &Message{Topic: "sensors/t", Payload: payload, QoS: 1, Bridges: 1})
		if err != nil {
			t.Fatal(err)
		}
		last = tk
	}
	if _, err := last.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	q.shedAll()
}

// checkResident fails unless at most an eighth of the file at path was
// resident (a shed every 1024 records leaves a few hundred kB at a time).
func checkResident(t *testing.T, path string, top int64, when string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if file := fi.Size() >> 10; top > file/8 {
		t.Fatalf("up to %d kB of the %d kB queue file resident %s", top, file, when)
	}
	t.Logf("queue file %d kB, at most %d kB of it resident %s", fi.Size()>>10, top, when)
}

// peakResident runs fn and returns the most of the file at path seen
// resident in this process meanwhile, in kB, sampled every millisecond.
func peakResident(t *testing.T, path string, fn func()) int64 {
	t.Helper()
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Skip("needs /proc/self/smaps")
	}
	var top int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			top = max(top, residentKB(t, path))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	return top
}

// residentKB is how much of the mapped file path is resident in this
// process, from /proc/self/smaps.
func residentKB(t *testing.T, path string) int64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Error(err)
		return 0
	}
	defer f.Close()
	var kb int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fs := strings.Fields(line); len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			in = len(fs) >= 6 && fs[5] == path
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			kb += n
		}
	}
	return kb
}

// TestReadLeavesMapSmall: a Read lets go of the pages it read as it
// returns, not when the releaser next runs: a drain reads the backlog at
// tens of MiB a second, and the releaser's interval of it would be resident.
func TestReadLeavesMapSmall(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Skip("needs /proc/self/smaps")
	}
	q, path := mustOpen(t, Options{Bridges: []string{"b"}, MaxPending: 1 << 20})
	const n, batch = 50_000, 1000
	fillResident(t, q, n)
	b, _ := q.Bridge("b")
	var buf []Message
	var top int64
	for after := uint64(0); after < n; {
		msgs, next, err := b.ReadAppend(buf[:0], after, batch, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != batch {
			t.Fatalf("read %d messages after %d, want %d", len(msgs), after, batch)
		}
		top = max(top, residentKB(t, path))
		buf, after = msgs, next
	}
	// A batch is over 200 kB of the file.
	if top > 32 {
		t.Fatalf("up to %d kB of the queue file resident after a Read returned", top)
	}
}
