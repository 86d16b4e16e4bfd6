package storage

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func benchMessages() int {
	if n, err := strconv.Atoi(os.Getenv("OUTPOST_BENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// fill enqueues n 64-byte messages, many per commit.
func fill(b *testing.B, q *Queue, n int) {
	payload := make([]byte, 64)
	var last *Ticket
	for i := range n {
		t, err := q.Enqueue(context.Background(), &Message{Topic: "sensors/s-01/telemetry", Payload: payload, QoS: 1, Bridges: 1})
		if err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 {
			if _, err := t.Wait(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		last = t
	}
	if _, err := last.Wait(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpen measures opening a queue holding a backlog: after a clean
// close (reads one state record) and after a crash (bbolt's consistency
// check of the whole file runs once).
func BenchmarkOpen(b *testing.B) {
	n := benchMessages()
	dir := b.TempDir()
	path := filepath.Join(dir, "queue.db")
	q, err := Open(path, Options{Bridges: []string{"b"}})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, q, n)
	crashed, _ := os.ReadFile(path) // the file as a kill -9 leaves it: still marked open
	q.Close()
	fi, _ := os.Stat(path)
	b.Logf("%d messages, file %.1f MiB", n, float64(fi.Size())/(1<<20))

	for _, tc := range []struct {
		name  string
		setup func() string
	}{
		{"clean", func() string { return path }},
		{"after-crash", func() string {
			p := filepath.Join(dir, "crashed.db")
			os.WriteFile(p, crashed, 0o600)
			return p
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				p := tc.setup()
				start := time.Now()
				q, err := Open(p, Options{Bridges: []string{"b"}})
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if st, _ := q.Stats(); st.Messages != uint64(n) {
					b.Fatalf("%d messages after open, want %d", st.Messages, n)
				}
				q.Close()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/open")
		})
	}
}

// BenchmarkDrainedFile measures what a queue file keeps in memory once its
// backlog is drained: the file keeps its size, and bbolt holds each free
// page's id in memory, after the drain and again when the file is opened.
// It reports live heap bytes per free page, and per GiB of the file.
func BenchmarkDrainedFile(b *testing.B) {
	n := benchMessages()
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	for range b.N {
		path := filepath.Join(b.TempDir(), "queue.db")
		before := heap()
		q, err := Open(path, Options{Bridges: []string{"b"}})
		if err != nil {
			b.Fatal(err)
		}
		fill(b, q, n)
		full := heap()
		br, _ := q.Bridge("b")
		st, _ := q.Stats()
		if err := br.Ack(st.LastSeq); err != nil {
			b.Fatal(err)
		}
		for range 2 { // the pages the Ack freed are pending until later commits
			if err := q.update(func(*bolt.Tx, *state) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		drained := heap()
		free := q.db.Stats().FreePageN
		q.Close()
		fi, _ := os.Stat(path)
		reopenedFrom := heap()
		q, err = Open(path, Options{Bridges: []string{"b"}})
		if err != nil {
			b.Fatal(err)
		}
		reopened := heap()
		q.Close()
		if free == 0 {
			b.Fatalf("no free pages after draining %d messages", n)
		}
		perPage := float64(drained-full) / float64(free)
		b.ReportMetric(perPage, "heap-B/free-page")
		b.ReportMetric(perPage*float64(1<<30/PageSize)/(1<<20), "heap-MiB/GiB-of-file")
		b.Logf("%d messages, file %.1f MiB, %d free pages after the drain: live heap %+.2f MiB after the drain, %.2f MiB after opening it again (%.2f MiB with the queue open and full)",
			n, float64(fi.Size())/(1<<20), free, float64(drained-full)/(1<<20), float64(reopened-reopenedFrom)/(1<<20), float64(full-before)/(1<<20))
	}
}
