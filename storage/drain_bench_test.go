package storage

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReadAck measures what a bridge's drain costs the queue per
// message: Reads of 1,000 messages into one reused slice, and an Ack every
// 100,000 (a drain records its position every quarter second) and at the
// end, over OUTPOST_BENCH_MESSAGES 64-byte messages (default 1,000,000).
// Reported apart: the Reads' time and the Acks'.
func BenchmarkReadAck(b *testing.B) {
	n := benchMessages()
	var read, ack time.Duration
	for range b.N {
		b.StopTimer()
		q, err := Open(filepath.Join(b.TempDir(), "queue.db"), Options{Bridges: []string{"b"}, MaxPending: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		fill(b, q, n)
		qb, _ := q.Bridge("b")
		b.StartTimer()
		var buf []Message
		after, acked := uint64(0), uint64(0)
		for after < uint64(n) {
			start := time.Now()
			msgs, next, err := qb.ReadAppend(buf[:0], after, 1000, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			read += time.Since(start)
			buf, after = msgs, next
			if after-acked >= 100_000 || after == uint64(n) {
				start = time.Now()
				if err := qb.Ack(after); err != nil {
					b.Fatal(err)
				}
				ack += time.Since(start)
				acked = after
			}
		}
		b.StopTimer()
		if p := qb.Pending(); p != 0 {
			b.Fatalf("%d pending after the drain", p)
		}
		q.Close()
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*n) }
	b.ReportMetric(per(read)+per(ack), "ns/msg")
	b.ReportMetric(per(read), "read-ns/msg")
	b.ReportMetric(per(ack), "ack-ns/msg")
}
