package storage

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/storage/internal/codec"
)

// The log is cut into segments of segSize sequence numbers, each a
// top-level bucket named "s" and seq/segSize (8 bytes, big-endian), so that
// a record is no deeper in the tree than in one flat bucket: on a full disk
// a commit has only the pages that earlier ones freed. A record is keyed by
// its sequence number within its segment.
//
// Deleting keys one by one is most of what a bbolt transaction costs when a
// bridge acknowledges a batch: each delete searches the tree and rewrites
// a node. So a record that no bridge needs any more is only marked gone in
// the counters, and its segment is deleted whole, in one step that frees
// its pages, once every bridge's position has passed its last number. At
// most one segment per bridge holds such dead records; when a bridge that
// lags still needs some records of a segment the others have passed, the
// dead ones are deleted one by one as before.
const (
	segShift = 10
	segSize  = 1 << segShift
)

const segPrefix = 's'

// segKey is the name of seq's segment.
func segKey(seq uint64) []byte {
	var k [9]byte
	k[0] = segPrefix
	binary.BigEndian.PutUint64(k[1:], seq>>segShift)
	return k[:]
}

// segNo is the number of segment sk, ok false if sk names no segment.
func segNo(sk []byte) (no uint64, ok bool) {
	if len(sk) != 9 || sk[0] != segPrefix {
		return 0, false
	}
	return binary.BigEndian.Uint64(sk[1:]), true
}

// segEnd is the last sequence number of segment sk.
func segEnd(sk []byte) uint64 {
	no, _ := segNo(sk)
	return (no+1)<<segShift - 1
}

// isSeg reports whether sk names a segment.
func isSeg(sk []byte) bool { _, ok := segNo(sk); return ok }

// logCursor walks the log's records in sequence order, across segments.
type logCursor struct {
	tx   *bolt.Tx
	segs *bolt.Cursor // over the top-level buckets
	c    *bolt.Cursor // in the current segment; nil past the end
}

func newLogCursor(tx *bolt.Tx) *logCursor {
	return &logCursor{tx: tx, segs: tx.Cursor()}
}

// First moves to the log's first record.
func (lc *logCursor) First() (k, v []byte) {
	sk, _ := lc.segs.Seek([]byte{segPrefix}) // after "log" and "meta"
	return lc.enter(sk, nil)
}

// Seek moves to the first record numbered seq or above.
func (lc *logCursor) Seek(seq uint64) (k, v []byte) {
	sk, _ := lc.segs.Seek(segKey(seq))
	return lc.enter(sk, seqKey(seq))
}

// Next moves to the record after the current one.
func (lc *logCursor) Next() (k, v []byte) {
	if lc.c == nil {
		return nil, nil
	}
	if k, v = lc.c.Next(); k != nil {
		return k, v
	}
	sk, _ := lc.segs.Next()
	return lc.enter(sk, nil)
}

// Last moves to the log's last record.
func (lc *logCursor) Last() (k, v []byte) {
	for sk, _ := lc.segs.Last(); isSeg(sk); sk, _ = lc.segs.Prev() {
		if b := lc.tx.Bucket(sk); b != nil {
			lc.c = b.Cursor()
			if k, v = lc.c.Last(); k != nil {
				return k, v
			}
		}
	}
	lc.c = nil
	return nil, nil
}

// enter moves to segment sk, at the first key from on (or its first key),
// and on to the next segment while there is nothing there.
func (lc *logCursor) enter(sk, from []byte) (k, v []byte) {
	for ; isSeg(sk); sk, _ = lc.segs.Next() {
		b := lc.tx.Bucket(sk)
		if b == nil {
			continue // not a bucket: never written so
		}
		lc.c = b.Cursor()
		if from != nil {
			k, v = lc.c.Seek(from)
			from = nil
		} else {
			k, v = lc.c.First()
		}
		if k != nil {
			return k, v
		}
	}
	lc.c = nil
	return nil, nil
}

// segWriter appends records, creating segments as the numbers reach them.
type segWriter struct {
	tx *bolt.Tx
	no uint64
	b  *bolt.Bucket
}

func newSegWriter(tx *bolt.Tx) *segWriter { return &segWriter{tx: tx} }

func (w *segWriter) put(seq uint64, rec []byte) error {
	if w.b == nil || seq>>segShift != w.no {
		b, err := w.tx.CreateBucketIfNotExists(segKey(seq))
		if err != nil {
			return err
		}
		b.FillPercent = 1 // keys only ever grow: pack pages full
		w.b, w.no = b, seq>>segShift
	}
	return w.b.Put(seqKey(seq), rec)
}

// deleteRecords deletes records by key, and each segment left empty.
func deleteRecords(tx *bolt.Tx, keys [][]byte) error {
	var b *bolt.Bucket
	var c *bolt.Cursor
	var sk []byte
	emptied := func() error {
		if b == nil {
			return nil
		}
		if k, _ := b.Cursor().First(); k != nil {
			return nil
		}
		return tx.DeleteBucket(sk)
	}
	for _, k := range keys {
		if s := segKey(binary.BigEndian.Uint64(k)); b == nil || string(s) != string(sk) {
			if err := emptied(); err != nil {
				return err
			}
			sk, b = s, tx.Bucket(s)
			if b == nil {
				continue
			}
			// One cursor, positioned afresh for each key (Bucket.Delete
			// makes a cursor per key); nothing iterates while it deletes:
			// bbolt cursors skip keys when their bucket changes under them.
			c = b.Cursor()
		}
		if b == nil {
			continue
		}
		if at, _ := c.Seek(k); string(at) != string(k) {
			continue
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return emptied()
}

// release deletes what the log no longer needs once a bridge's position
// has moved from from to to: each segment it has passed whose records are
// all done goes whole; in one still needed by a bridge behind, the dead
// records go one by one. The map's pages are shed after each segment it
// reads.
func (q *Queue) release(tx *bolt.Tx, st *state, from, to uint64) error {
	var whole, dead [][]byte
	c := tx.Cursor()
	last := string(segKey(to))
	for sk, _ := c.Seek(segKey(from + 1)); isSeg(sk) && string(sk) <= last; sk, _ = c.Next() {
		end := segEnd(sk)
		if end > to {
			// The segment to is in: gone whole when every bridge has
			// caught up with the log's end (it is made again for the next
			// record); not scanned, that is for when its end is passed.
			if to == st.seq && !behind(st, st.seq) {
				whole = append(whole, sk)
			}
			break
		}
		if !behind(st, end) {
			whole = append(whole, sk)
			continue
		}
		b := tx.Bucket(sk)
		if b == nil {
			continue
		}
		all, some := true, len(dead)
		b.ForEach(func(k, v []byte) error {
			if codec.Verify(v) == nil && st.done(codec.Bridges(v), binary.BigEndian.Uint64(k)) {
				dead = append(dead, k)
			} else {
				all = false
			}
			return nil
		})
		q.shed(tx)
		if all {
			dead = dead[:some]
			whole = append(whole, sk)
		}
	}
	for _, sk := range whole {
		// Deleting a bucket reads each of its pages through the map.
		if err := tx.DeleteBucket(sk); err != nil {
			return err
		}
		q.shed(tx)
	}
	return deleteRecords(tx, dead)
}

// behind reports whether a registered bridge's position is below seq.
func behind(st *state, seq uint64) bool {
	for i := range st.bridges {
		if b := &st.bridges[i]; b.name != "" && b.pos < seq {
			return true
		}
	}
	return false
}

// migrate moves the records of a queue file written before the log was cut
// into segments (one flat bucket, logBucket) into segments, in chunks of
// dropChunk records per transaction: each chunk moves atomically, so an
// interrupted migration resumes where it stopped.
func migrate(db *bolt.DB) error {
	for {
		more := false
		err := db.Update(func(tx *bolt.Tx) error {
			old := tx.Bucket(logBucket)
			if old == nil {
				return nil
			}
			w := newSegWriter(tx)
			var keys [][]byte
			c := old.Cursor()
			for k, v := c.First(); k != nil && len(keys) < dropChunk; k, v = c.Next() {
				if len(k) != 8 || v == nil {
					return fmt.Errorf("%w: bad key in log", ErrCorrupt)
				}
				if err := w.put(binary.BigEndian.Uint64(k), v); err != nil {
					return err
				}
				keys = append(keys, k)
			}
			if len(keys) == 0 {
				return tx.DeleteBucket(logBucket)
			}
			more = true
			for _, k := range keys {
				if at, _ := c.Seek(k); string(at) == string(k) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}
