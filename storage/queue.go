package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/outpost-edge/outpost/storage/internal/codec"
)

// FullPolicy says what happens when a message does not fit under MaxBytes.
type FullPolicy int

const (
	// DropOldest evicts the oldest messages (counted) to make room.
	DropOldest FullPolicy = iota
	// RejectNew refuses the new message with ErrFull.
	RejectNew
)

// Options configure a Queue. The zero value is a queue with no limits and
// no bridges.
type Options struct {
	// Bridges are the configured bridges' names. A bridge seen for the first
	// time starts at the end of the log.
	Bridges []string
	// MaxBytes caps the log's key+value bytes; 0 means no cap. The file is
	// also capped, at MaxBytes plus room for the B-tree's own pages.
	MaxBytes int64
	// MaxAge drops messages older than this; 0 keeps them forever.
	MaxAge   time.Duration
	WhenFull FullPolicy
	// CommitInterval, when positive, makes the committer commit at most once
	// per interval instead of as soon as the previous commit ends.
	CommitInterval time.Duration
	// MaxPending bounds the messages waiting for a commit; Enqueue blocks
	// beyond it. Default 65536.
	MaxPending int
	Logger     *slog.Logger
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Property is an MQTT 5 user property carried with a message.
type Property = codec.Property

// Message is one queued message.
type Message struct {
	Seq        uint64
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	ReceivedAt time.Time // millisecond precision
	Bridges    uint64    // bit i: bridge i must forward it
	Props      []Property
	// AckedEarly says the sender was acknowledged before the commit
	// (queue.sync: interval): if the commit refuses the message, it is lost
	// and counted as dropped, like a QoS 0 message. Not stored.
	AckedEarly bool
}

var (
	logBucket = []byte("log") // the log before it was cut into segments

	metaBucket  = []byte("meta")
	stateKey    = []byte("state")
	leaseSuffix = ".seq"
)

// PageSize is the page size of a queue file outpost creates; a file made
// by an earlier version keeps its own. bbolt keeps every free page of the
// file in memory (about 30 bytes each, one map entry), and a file that a
// long outage grew and the drain emptied is mostly free pages: at 16 KiB
// that is a quarter of the pages, and of the memory, of 4 KiB ones. Each
// commit writes the whole free list too.
const PageSize = 16 << 10

// leaseStep is how far ahead of the last used sequence number the lease file
// is written, so that a queue started anew after its file was moved aside
// still numbers messages above every number used before.
const leaseStep = 1 << 20

// Queue is the durable log. Its methods are safe for concurrent use.
type Queue struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger
	now  func() time.Time

	readOnly bool

	wmu   sync.Mutex // serialises write transactions with their state update
	lease uint64     // guarded by wmu
	// removals counts the transactions that removed records other than by
	// an Ack (limits, damage), each once committed, with wmu held: a
	// Read's tally of records (see readTally) holds only while none has.
	removals  atomic.Uint64
	removing  bool          // the transaction under way removes records; guarded by wmu
	accounted uint64        // records Acks read to count them; guarded by wmu
	used      chan struct{} // see touched

	mu       sync.Mutex // guards the fields below
	st       state      // as of the last committed transaction
	open     *batch     // messages waiting for the next commit
	notify   chan struct{}
	closed   bool
	rejected uint64 // QoS>0 messages refused with ErrFull (not stored, not acked)
	commits  uint64 // append transactions committed since open
	appended uint64 // messages they held

	sem     chan struct{} // one token per message waiting for a commit
	kick    chan struct{}
	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// Open opens or creates the queue file at path. A file that cannot be read
// as a queue is renamed aside (path.corrupt-<UTC time>), reported at error
// level, and replaced by an empty queue; sequence numbers continue above
// those used before, from the lease file beside it. When the disk has no
// room for both (a queue that once filled the disk is as big as it), the
// corrupt file is deleted instead of kept.
func Open(path string, opts Options) (*Queue, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1 << 16
	}
	if len(opts.Bridges) > maxBridges {
		return nil, ErrTooManyBridges
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	q := &Queue{
		path:    path,
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		notify:  make(chan struct{}),
		sem:     make(chan struct{}, opts.MaxPending),
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		used:    make(chan struct{}, 1),
	}
	q.open = newBatch()
	q.lease = readLease(path + leaseSuffix)

	err := q.load()
	if errors.Is(err, ErrCorrupt) {
		aside, merr := moveAside(path, q.now())
		if merr != nil {
			return nil, fmt.Errorf("moving corrupt queue aside: %w (after: %v)", merr, err)
		}
		q.log.Error("QUEUE FILE CORRUPT: moved aside, starting with an empty queue; messages in it were not forwarded",
			"error", err, "moved_to", aside, "seq_continues_from", q.lease)
		err = q.load()
		if err != nil && diskFull(err) && aside != "" {
			// A queue that once filled the disk left a file as big as the
			// disk: kept, it leaves no room for the new queue, and starting
			// matters more than inspecting it.
			q.log.Error("QUEUE FILE CORRUPT: no room for a new queue beside the corrupt file; deleting it", "deleted", aside, "error", err)
			os.Remove(path) // the new file, as far as it got
			if rerr := os.Remove(aside); rerr != nil {
				return nil, fmt.Errorf("%w (and deleting the corrupt file for room: %v)", err, rerr)
			}
			if err = syncDir(filepath.Dir(path)); err == nil {
				err = q.load()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	q.wg.Go(q.committer)
	q.wg.Go(q.releaser)
	if opts.MaxAge > 0 {
		q.wg.Go(q.janitor)
	}
	return q, nil
}

// load opens the bbolt file, checks it, and registers the bridges.
func (q *Queue) load() (err error) {
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some damaged pages
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			if q.db != nil {
				q.db.Close()
				q.db = nil
			}
		}
	}()
	bopts := &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType, PageSize: PageSize}
	if q.opts.MaxBytes > 0 {
		bopts.MaxSize = int(min(q.opts.MaxBytes+q.opts.MaxBytes/2+32<<20, int64(^uint(0)>>1)))
	}
	db, err := bolt.Open(q.path, 0o640, bopts)
	if errors.Is(err, berrors.ErrTimeout) {
		return ErrLocked
	}
	if err != nil {
		var pe *fs.PathError
		var errno syscall.Errno
		if errors.As(err, &pe) || errors.As(err, &errno) {
			return fmt.Errorf("opening queue: %w", err) // permissions, disk: not the file's fault
		}
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	q.db = db
	fail := func(err error) error {
		db.Close()
		q.db = nil
		return err
	}

	if err := migrate(db); err != nil {
		return fail(fmt.Errorf("opening queue: converting the log to segments: %w", err))
	}
	var st state
	err = db.Update(func(tx *bolt.Tx) error {
		lc := newLogCursor(tx)
		mb, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := mb.Get(stateKey); v != nil {
			if err := st.unmarshal(v); err != nil {
				return err
			}
		} else if k, _ := lc.First(); k != nil {
			return fmt.Errorf("%w: log without state record", ErrCorrupt)
		} else {
			// A new file: continue above every number leased before, in
			// case an earlier file was lost or moved aside.
			st.seq = q.lease
		}
		if st.dirty {
			// The last run did not close the queue. bbolt survives that by
			// design; a power cut on a flash card may not, so check the
			// whole file once now rather than panic later. The check
			// reads every page: they are let go of as it goes.
			stop := q.shedWhile(tx)
			for cerr := range tx.Check() {
				stop()
				return fmt.Errorf("%w: %v", ErrCorrupt, cerr)
			}
			stop()
		}
		if k, v := lc.Last(); k != nil {
			if len(k) != 8 {
				return fmt.Errorf("%w: bad key in log", ErrCorrupt)
			}
			if err := codec.Verify(v); err != nil {
				q.log.Warn("last queued record is damaged; it will be dropped when read", "seq", binary.BigEndian.Uint64(k), "error", err)
			}
			st.seq = max(st.seq, binary.BigEndian.Uint64(k))
		}
		freed, err := q.register(&st)
		if err != nil {
			return err
		}
		if freed {
			// The freed bridge may have been all that kept records that
			// are done in segments the others have passed.
			if err := q.release(tx, &st, 0, st.seq); err != nil {
				return err
			}
		}
		st.dirty = true
		return mb.Put(stateKey, st.marshal())
	})
	if err != nil {
		return fail(fmt.Errorf("opening queue: %w", err))
	}
	// What the open read (all of the file, after an unclean stop) is let
	// go of now: an idle queue may see no transaction, and so no release,
	// for hours.
	q.shedAll()
	q.st = st
	if err := q.extendLease(st.seq); err != nil {
		return fail(err)
	}
	return nil
}

// register matches the configured bridges to their slots, giving new ones a
// free slot positioned at the end of the log, and frees the slots of bridges
// no longer configured once they have nothing pending (freed reports one).
func (q *Queue) register(st *state) (freed bool, err error) {
	want := make(map[string]bool, len(q.opts.Bridges))
	for _, n := range q.opts.Bridges {
		want[n] = true
	}
	for i := range st.bridges {
		b := &st.bridges[i]
		if b.name == "" || want[b.name] {
			continue
		}
		if b.pending == 0 {
			*b = bridgeState{}
			freed = true
			continue
		}
		q.log.Warn("queue holds messages for a bridge that is no longer configured; they are kept until it returns or a limit drops them",
			"bridge", b.name, "messages", b.pending)
	}
next:
	for _, n := range q.opts.Bridges {
		for i := range st.bridges {
			if st.bridges[i].name == n {
				continue next
			}
		}
		for i := range st.bridges {
			if st.bridges[i].name == "" {
				st.bridges[i] = bridgeState{name: n, pos: st.seq}
				continue next
			}
		}
		return freed, ErrTooManyBridges
	}
	return freed, nil
}

// Close commits what was enqueued, marks the file cleanly closed and
// closes it. It is safe to call more than once.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		if q.readOnly {
			err = q.db.Close()
			return
		}
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.closing)
		q.wg.Wait()
		err = q.update(func(tx *bolt.Tx, st *state) error {
			st.dirty = false
			return nil
		})
		if cerr := q.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// update runs fn in a write transaction on a copy of the state, writes the
// state back in the same transaction and, once committed, makes it current.
func (q *Queue) update(fn func(tx *bolt.Tx, st *state) error) (err error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	q.mu.Lock()
	st := q.st
	q.mu.Unlock()
	err = q.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx, &st); err != nil {
			return err
		}
		return tx.Bucket(metaBucket).Put(stateKey, st.marshal())
	})
	if q.removing {
		// After the commit: a Read that began before it, and saw the
		// records, counts as before it.
		q.removals.Add(1)
		q.removing = false
	}
	if err != nil {
		return err
	}
	q.touched()
	q.mu.Lock()
	advanced := st.seq != q.st.seq
	q.st = st
	if advanced {
		close(q.notify)
		q.notify = make(chan struct{})
	}
	q.mu.Unlock()
	return nil
}

// view runs fn in a read transaction, turning a bbolt panic on a damaged
// page into ErrCorrupt.
func (q *Queue) view(fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	defer q.touched()
	return q.db.View(fn)
}

// extendLease makes sure the lease file is above seq. Called with wmu held
// or before the queue is shared.
func (q *Queue) extendLease(seq uint64) error {
	if seq < q.lease {
		return nil
	}
	next := seq + leaseStep
	if err := writeFileAtomic(q.path+leaseSuffix, []byte(strconv.FormatUint(next, 10)+"\n")); err != nil {
		return fmt.Errorf("writing sequence lease: %w", err)
	}
	q.lease = next
	return nil
}

func readLease(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// writeFileAtomic writes data to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func moveAside(path string, now time.Time) (string, error) {
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return aside, syncDir(filepath.Dir(path))
}

// Changed returns a channel that is closed when a message is next committed.
func (q *Queue) Changed() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.notify
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

var _ io.Closer = (*Queue)(nil)

// OpenReadOnly opens the queue file for inspection (outpost queue stats and
// peek). It fails with ErrLocked while a running outpost holds the file.
// Close it with Close.
func OpenReadOnly(path string, opts Options) (*Queue, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening queue: %w", err)
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("opening queue: %w", err)
	}
	q := &Queue{db: db, path: path, opts: opts, log: slog.New(slog.DiscardHandler), now: time.Now, readOnly: true}
	err = q.view(func(tx *bolt.Tx) error {
		mb := tx.Bucket(metaBucket)
		if tx.Bucket(logBucket) != nil {
			return errors.New("opening queue: the file is in an earlier version's layout; outpost converts it when it next starts")
		}
		if mb == nil {
			return fmt.Errorf("%w: not a queue file", ErrCorrupt)
		}
		v := mb.Get(stateKey)
		if v == nil {
			return fmt.Errorf("%w: no state record", ErrCorrupt)
		}
		return q.st.unmarshal(v)
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return q, nil
}

// releaser keeps the resident part of bbolt's map from growing with the
// backlog. Every commit reads, through the map, the pages the last one
// wrote, and each fault maps a run of them; reading a backlog to forward it
// does the same, at tens of MiB per second. After a transaction, at most
// every releaseEvery, the map's pages are released (they stay in the page
// cache); an idle queue costs nothing, not even a wakeup.
func (q *Queue) releaser() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-q.used:
		case <-q.closing:
			return
		}
		q.shedAll()
		t.Reset(releaseEvery)
		select {
		case <-t.C:
		case <-q.closing:
			return
		}
	}
}

// releaseEvery spaces the releaser's passes.
const releaseEvery = 10 * time.Millisecond

// shed releases the map's pages, up to the file's size as tx sees it (the
// pages the last commit wrote included). The releaser calls it after
// transactions; a write transaction that reads many pages calls it as it
// goes (an Ack over a drained backlog reads every record it passes, and
// deleting a segment reads each of its pages), since by its commit a
// quarter second of draining would have made megabytes resident. While tx
// is open the map cannot move.
func (q *Queue) shed(tx *bolt.Tx) {
	dropResident(q.db.Info().Data, int(tx.Size()))
}

// shedAll sheds the whole map, in a read transaction of its own.
func (q *Queue) shedAll() {
	q.db.View(func(tx *bolt.Tx) error { q.shed(tx); return nil })
}

// shedWhile sheds every releaseEvery, from another goroutine, until stop is
// called; for a long read in tx that cannot call shed itself (a full check
// from a flash card takes seconds).
// Pages are released under a reader safely: the map is read-only, and they
// fault back in from the page cache.
func (q *Queue) shedWhile(tx *bolt.Tx) (stop func()) {
	data, size := q.db.Info().Data, int(tx.Size())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(releaseEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				dropResident(data, size)
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// shedEvery is how many records an Ack reads between sheds.
const shedEvery = 1024

// touched tells the releaser that a transaction has read the map.
func (q *Queue) touched() {
	select {
	case q.used <- struct{}{}:
	default:
	}
}
