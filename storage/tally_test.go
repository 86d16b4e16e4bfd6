package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestAckUsesReadTallies: an Ack past records the bridge's Reads went
// through does not read them again, and counts them as a full scan of the
// log does; after records were removed meanwhile (here: drop_oldest), or
// for records another bridge also needs, it reads them.
func TestAckUsesReadTallies(t *testing.T) {
	q, _ := mustOpen(t, Options{Bridges: []string{"a", "b"}, MaxBytes: 200_000})
	a, _ := q.Bridge("a")
	b, _ := q.Bridge("b")
	// ack reads from the position in batches of 100 up to seq, acks seq,
	// and returns how many records the Ack read.
	ack := func(br *Bridge, seq uint64) uint64 {
		t.Helper()
		for after := br.Position(); after < seq; {
			_, next, err := br.Read(after, int(min(100, seq-after)), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			after = next
		}
		before := q.accounted
		if err := br.Ack(seq); err != nil {
			t.Fatal(err)
		}
		if err := q.db.View(checkTx); err != nil {
			t.Fatal(err)
		}
		return q.accounted - before
	}
	for range 1000 {
		enqueue(t, q, "t", a.Mask(), "for a alone")
	}
	if n := ack(a, 1000); n != 0 {
		t.Errorf("the Ack of 1,000 records a read read %d of them again", n)
	}

	// Records removed between the Reads and the Ack: the tallies no longer
	// hold.
	for range 1000 {
		enqueue(t, q, "t", a.Mask(), "for a alone")
	}
	if _, _, err := a.Read(a.Position(), 1000, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := q.evict(10, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(2000); err != nil {
		t.Fatal(err)
	}
	if err := q.db.View(checkTx); err != nil {
		t.Fatalf("after an eviction between Read and Ack: %v", err)
	}

	// Records for both bridges: a's Ack leaves them to b, b's deletes them.
	for range 500 {
		enqueue(t, q, "t", a.Mask()|b.Mask(), "for both")
	}
	b.Ack(2000) // b had nothing before
	if n := ack(a, 2500); n != 500 {
		t.Errorf("a's Ack of records b also needs read %d of 500", n)
	}
	if n := ack(b, 2500); n != 500 {
		t.Errorf("b's Ack of records a had passed read %d of 500", n)
	}
	if st, _ := q.Stats(); st.Messages != 0 {
		t.Fatalf("%d messages left", st.Messages)
	}
}

// TestAckCountsRandom: Reads, Acks, evictions and sessions starting again
// from the durable position, at random, by two handles of one bridge and a
// second bridge: after each, every counter matches a full scan of the log.
func TestAckCountsRandom(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			q, _ := mustOpen(t, Options{Bridges: []string{"a", "b"}, MaxBytes: 60_000})
			a1, _ := q.Bridge("a")
			a2, _ := q.Bridge("a")
			b, _ := q.Bridge("b")
			hs := []*Bridge{a1, a2, b}
			read := make([]uint64, len(hs)) // each handle's read position
			for step := range 400 {
				h := r.IntN(len(hs))
				br := hs[h]
				var op string
				switch r.IntN(6) {
				case 0, 1:
					op = "enqueue"
					var last *Ticket
					for range 1 + r.IntN(40) {
						tk, err := q.Enqueue(t.Context(), &Message{Topic: "t", Payload: []byte("x"), QoS: 1, Bridges: []uint64{1, 2, 3}[r.IntN(3)]})
						if err != nil {
							t.Fatal(err)
						}
						last = tk
					}
					if _, err := last.Wait(t.Context()); err != nil {
						t.Fatal(err)
					}
				case 2:
					op = "read"
					_, next, err := br.Read(max(read[h], br.Position()), 1+r.IntN(60), 1<<20)
					if err != nil {
						t.Fatal(err)
					}
					read[h] = next
				case 3:
					op = "ack"
					if pos := br.Position(); read[h] > pos {
						if err := br.Ack(pos + 1 + uint64(r.IntN(int(read[h]-pos)))); err != nil {
							t.Fatal(err)
						}
					}
				case 4:
					op = "restart"
					read[h] = br.Position()
				case 5:
					op = "evict"
					if err := q.evict(int64(r.IntN(100)), 0); err != nil {
						t.Fatal(err)
					}
				}
				if err := q.db.View(checkCounts); err != nil {
					t.Fatalf("step %d (%s by handle %d): %v", step, op, h, err)
				}
			}
		})
	}
}
