package storage

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAckKeepsMapSmall: an Ack over a long drained backlog reads every
// record it passes and every page of each segment it deletes, all in one
// transaction; the map's pages are let go of as it goes, so the queue file
// never becomes resident in this process. Without the sheds in Ack and
// release, all of it does until the releaser runs after the commit.
func TestAckKeepsMapSmall(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Skip("needs /proc/self/smaps")
	}
	q, path := mustOpen(t, Options{Bridges: []string{"b"}, MaxPending: 1 << 20})
	payload := bytes.Repeat([]byte("x"), 200)
	const n = 100_000
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
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	q.wmu.Lock()
	q.shed()
	q.wmu.Unlock()

	var top atomic.Int64 // highest resident kB of the queue file seen
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			top.Store(max(top.Load(), residentKB(t, path)))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	b, _ := q.Bridge("b")
	err = b.Ack(n)

	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := q.Stats()
	if st.Messages != 0 {
		t.Fatalf("%d messages left after acking all", st.Messages)
	}
	// A shed every 1024 records leaves a few hundred kB at a time; the
	// file is over 40 MiB.
	if file := fi.Size() >> 10; top.Load() > file/8 {
		t.Fatalf("up to %d kB of the %d kB queue file resident during the Ack", top.Load(), file)
	}
	t.Logf("queue file %d kB, at most %d kB of it resident during the Ack", fi.Size()>>10, top.Load())
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
