package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/outpost-edge/outpost/bridge/route"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// Reasons a Kafka bridge drops a message the cluster refuses for good.
const (
	// DropTooLarge: the record is larger than the producer's batch limit
	// (batch.max_bytes) or the topic's max.message.bytes.
	DropTooLarge = "too_large"
	// DropUnauthorized: the cluster refuses writes to the record's topic
	// (TOPIC_AUTHORIZATION_FAILED).
	DropUnauthorized = "unauthorized"
	// DropInvalidTopic: the route's topic template expands to a name Kafka
	// does not accept.
	DropInvalidTopic = "invalid_topic"
	// DropInvalidRecord: the broker refuses the record itself
	// (INVALID_RECORD, e.g. a topic policy or compaction without a key).
	DropInvalidRecord = "invalid_record"
)

const (
	// kafkaConnectTimeout bounds the first contact of a session.
	kafkaConnectTimeout = 10 * time.Second
	// kafkaPingEvery is how often a session checks that the cluster
	// answers; Up turns false within about twice this.
	kafkaPingEvery = 10 * time.Second
)

// Kafka is a bridge to a Kafka cluster: an idempotent producer (acks=all)
// fed from the durable queue.
//
// Acknowledgement: a record's delivery is done when franz-go's promise
// reports it written to every in-sync replica; the forwarder advances the
// bridge's durable position, in queue order, only past done deliveries.
//
// Retries: franz-go retries retryable errors itself, for ever (no record
// retry limit, no delivery timeout). A record that fails anyway (unknown
// topic after a few metadata refreshes, a closed client, an unexpected
// error) ends the session: the client is closed, so nothing still buffered
// after the failure is written, and the next session resends from the
// durable position after a backoff. (Batches of the failed one's partition
// that franz-go has already sent are written: on that partition, a
// message may then arrive for the first time after a later one.)
//
// Drops: errors that name the record's topic (TOPIC_AUTHORIZATION_FAILED,
// INVALID_TOPIC_EXCEPTION) are the record's own: franz-go fails a whole
// partition's buffer with the error of its first failed batch, but every
// record of a partition has the same topic. A record over the producer's
// batch limit is dropped before it is sent. Errors about a batch's content
// (MESSAGE_TOO_LARGE from the broker, RECORD_LIST_TOO_LARGE,
// INVALID_RECORD) may hit records that only shared a batch or a partition
// with the culprit, so they are not trusted: the session ends, and the next
// one sends the messages from the first to the last that failed so one at a
// time, each alone in its batch with nothing else in flight. A message that
// fails alone is dropped; the others go through.
//
// Batching: a backlog is handed to franz-go max_messages records at a
// time and sent at once (see kafkaLink.push); live messages linger up to
// max_delay to fill a batch.
//
// Order: the record key comes from the route; franz-go's default
// partitioner puts every record of a key on one partition, and the
// idempotent producer (at most 5 requests in flight per broker, sequence
// numbers per partition) writes them in the order they were produced.
type Kafka struct {
	opts Options
	cfg  *configs.KafkaBridge
	log  *slog.Logger
	fw   *forwarder
	c    counters

	window   int             // records in flight at most: 2 × batch.max_messages
	maxBatch int32           // producer batch limit, from batch.max_bytes
	pingEach time.Duration   // kafkaPingEvery; tests shorten it
	zstd     *zstdCompressor // compression zstd: kept across sessions
	testOpts []kgo.Opt       // appended to the client options, for tests

	gatewayID []byte // the gateway_id header's value, shared by all records
	// mappings: each local topic's Kafka topic, key and mqtt_topic header
	// (see mapping); the route is the topic's first match, so it is not
	// part of the key.
	mappings mappings[*kafkaMapping]

	mu sync.Mutex
	// Messages seq in [serialLo, serialHi] failed with an error that may
	// not be theirs; they are sent one at a time until the durable
	// position passes serialHi.
	serialLo, serialHi uint64
}

// NewKafka returns the bridge for a kafka bridge section.
func NewKafka(o Options) (*Kafka, error) {
	if o.Config.Kafka == nil {
		return nil, errors.New("bridge: not a kafka bridge")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	maxMessages := max(o.Config.Batch.MaxMessages, 1)
	b := &Kafka{
		opts:      o,
		cfg:       o.Config.Kafka,
		log:       o.Logger.With("bridge", o.Config.Name),
		window:    2 * maxMessages,
		maxBatch:  int32(min(max(int64(o.Config.Batch.MaxBytes), 1<<10), 1<<30)),
		pingEach:  kafkaPingEvery,
		gatewayID: []byte(o.GatewayID),
	}
	switch b.cfg.Compression {
	case "", "none", "gzip", "snappy", "lz4":
	case "zstd":
		b.zstd = newZstdCompressor(zstdEncoders())
	default:
		return nil, fmt.Errorf("bridge: unknown compression %q", b.cfg.Compression)
	}
	if s := b.cfg.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return nil, fmt.Errorf("bridge: unknown SASL mechanism %q", s.Mechanism)
		}
	}
	b.fw = &forwarder{
		qb:          o.Queue,
		maxMessages: maxMessages,
		maxBytes:    max(int(o.Config.Batch.MaxBytes), 1),
		maxDelay:    o.Config.Batch.MaxDelay,
		pace:        &pacer{rate: o.Config.MaxRate},
		c:           &b.c,
		log:         b.log,
	}
	return b, nil
}

// Name is the bridge's name.
func (b *Kafka) Name() string { return b.opts.Config.Name }

// Stats returns the bridge's counters.
func (b *Kafka) Stats() Stats {
	return b.c.stats(b.Name(), b.opts.Queue.Pending())
}

// Run connects, forwards and reconnects until ctx is done.
func (b *Kafka) Run(ctx context.Context) error {
	reconnect(ctx, &b.opts, &b.c, b.log, func(ctx context.Context) (bool, bool, error) {
		forwarded := b.c.forwarded.Load()
		isolate, err := b.session(ctx)
		// A session that forwarded something makes the next failure a new
		// one; one that fails again and again on the same record (a topic
		// that does not exist) backs off to reconnect.max.
		progressed := b.c.forwarded.Load() != forwarded
		if isolate && ctx.Err() == nil {
			// Not the cluster's fault: start over at once, sending the
			// messages that failed one at a time.
			b.log.Info("kafka refused a batch; resending its messages one at a time to find the one at fault", "error", err)
		}
		return progressed, isolate, err
	})
	return nil
}

// session is one producer client: reach the cluster, then forward until a
// record fails with an error that is not a drop. isolate says that the
// session ended on an error that calls for sending messages one at a time.
func (b *Kafka) session(ctx context.Context) (isolate bool, err error) {
	o, err := b.clientOptions()
	if err != nil {
		return false, err
	}
	l := &kafkaLink{b: b, lostCh: make(chan struct{}), progCh: make(chan struct{}, 1), batchSize: b.fw.maxMessages}
	cl, err := kgo.NewClient(append(o, kgo.WithHooks(l))...)
	if err != nil {
		return false, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	l.cl = cl
	pctx, cancel := context.WithTimeout(ctx, kafkaConnectTimeout)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("reaching kafka brokers %s: %w", strings.Join(b.cfg.Brokers, ","), err)
	}
	b.mu.Lock()
	if b.serialHi != 0 && b.opts.Queue.Position() >= b.serialHi {
		b.serialLo, b.serialHi = 0, 0
	}
	serialLo, serialHi := b.serialLo, b.serialHi
	b.mu.Unlock()

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	l.serialLo, l.serialHi = serialLo, serialHi
	l.ctx, l.cancel = context.WithCancel(sctx)
	now, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	l.now = now
	defer l.cancel()
	b.c.up.Store(true)
	b.log.Info("upstream connected", "brokers", strings.Join(b.cfg.Brokers, ","), "pending", b.opts.Queue.Pending())
	var pinger sync.WaitGroup
	pinger.Go(func() { b.ping(sctx, cl) })
	defer pinger.Wait()
	defer stop()

	err = b.fw.run(ctx, l)
	lerr, lo, hi := l.failure()
	if errors.Is(err, errLinkLost) && lerr != nil {
		err = fmt.Errorf("%w: %v", err, lerr)
	}
	if hi != 0 {
		b.mu.Lock()
		b.serialLo, b.serialHi = lo, hi
		b.mu.Unlock()
		return true, err
	}
	return false, err
}

// ping keeps Up true while the cluster answers and false while it does not.
// A session does not end when the cluster goes away: franz-go keeps
// retrying what is in flight and resumes when a broker answers again.
func (b *Kafka) ping(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(b.pingEach)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		pctx, cancel := context.WithTimeout(ctx, b.pingEach)
		err := cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch up := err == nil; {
		case up && !b.c.up.Load():
			b.log.Info("kafka cluster reachable again", "pending", b.opts.Queue.Pending())
		case !up && b.c.up.Load():
			b.log.Warn("kafka cluster unreachable; messages stay queued, in-flight records are retried", "error", err, "pending", b.opts.Queue.Pending())
		}
		b.c.up.Store(err == nil)
	}
}

func (b *Kafka) clientOptions() ([]kgo.Opt, error) {
	o := []kgo.Opt{
		kgo.SeedBrokers(b.cfg.Brokers...),
		kgo.ClientID(b.cfg.ClientID),
		kgo.WithLogger(kafkaLogger{kslog.New(b.log.With("component", "franz-go"))}),
		// Idempotent (franz-go's default) with acks from every in-sync
		// replica: a record is acknowledged once it is durable upstream.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Never give up on a record over retryable errors: the queue
		// keeps it, and the position does not move past it.
		kgo.RecordRetries(math.MaxInt),
		kgo.RecordDeliveryTimeout(0),
		kgo.ProducerLinger(max(b.opts.Config.Batch.MaxDelay, 0)),
		kgo.ProducerBatchMaxBytes(b.maxBatch),
		kgo.MaxBufferedRecords(b.window + 1),
		b.compression(),
		// No KIP-714 client telemetry: it would spend a metered uplink on
		// franz-go's own metrics, and its lz4 frame takes a 4 MiB buffer
		// on a gateway (outpost's own metrics are on /metrics).
		kgo.DisableClientMetrics(),
	}
	if b.cfg.TLS != nil {
		tc, err := clientTLS(b.cfg.TLS)
		if err != nil {
			return nil, err
		}
		o = append(o, kgo.DialTLSConfig(tc))
	}
	if s := b.cfg.SASL; s != nil {
		// The password is read at every connection, so a rotated one is
		// picked up without a restart.
		password := func() (string, error) {
			pw, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				return "", fmt.Errorf("reading sasl password_file: %w", err)
			}
			return strings.TrimRight(string(pw), "\r\n"), nil
		}
		if _, err := password(); err != nil {
			return nil, err
		}
		var m sasl.Mechanism
		switch s.Mechanism {
		case "PLAIN":
			m = plain.Plain(func(context.Context) (plain.Auth, error) {
				pw, err := password()
				return plain.Auth{User: s.Username, Pass: pw}, err
			})
		case "SCRAM-SHA-256", "SCRAM-SHA-512":
			auth := func(context.Context) (scram.Auth, error) {
				pw, err := password()
				return scram.Auth{User: s.Username, Pass: pw}, err
			}
			m = scram.Sha256(auth)
			if s.Mechanism == "SCRAM-SHA-512" {
				m = scram.Sha512(auth)
			}
		}
		o = append(o, kgo.SASL(m))
	}
	return append(o, b.testOpts...), nil
}

func (b *Kafka) compression() kgo.Opt {
	switch b.cfg.Compression {
	case "gzip":
		return kgo.ProducerBatchCompression(kgo.GzipCompression())
	case "snappy":
		return kgo.ProducerBatchCompression(kgo.SnappyCompression())
	case "lz4":
		return kgo.ProducerBatchCompression(kgo.Lz4Compression())
	case "zstd":
		return kgo.WithCompressor(b.zstd)
	}
	return kgo.ProducerBatchCompression(kgo.NoCompression())
}

// kafkaLogger passes franz-go's warnings and errors to the bridge's log,
// and its informational messages only when the log is at debug level.
// franz-go's own debug output (a few lines per request) is never asked for.
type kafkaLogger struct{ l *kslog.Logger }

func (k kafkaLogger) Level() kgo.LogLevel {
	switch lv := k.l.Level(); lv {
	case kgo.LogLevelDebug:
		return kgo.LogLevelInfo
	case kgo.LogLevelInfo:
		return kgo.LogLevelWarn
	default:
		return lv
	}
}

func (k kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if msg == "flushing" {
		return // each time a full window is sent without lingering
	}
	if level == kgo.LogLevelInfo {
		level = kgo.LogLevelDebug
	}
	k.l.Log(level, msg, keyvals...)
}

// kafkaDelivery is one record handed to franz-go. Its channel is made only
// when the forwarder waits on it (the oldest in the window), not for each
// of hundreds of thousands of records a second. It is allocated apart from
// the record: the window keeps deliveries that are done until the ones
// before them are (partitions finish out of order), and the record, its
// headers and its payload go as soon as franz-go is done with them.
type kafkaDelivery struct {
	err   error                         // set before finBit
	done  atomic.Pointer[chan struct{}] // made by Done
	flags atomic.Uint32                 // finBit, closedBit, leftBit
}

const (
	finBit    = 1 << iota // the record is finished; err is set
	closedBit             // done is closed: by finish or Done, whichever sees the other's mark
	// leftBit: finish is over, and has let go of the delivery. Only then
	// is it finished for the forwarder, which may then have it reused
	// (see deliveries).
	leftBit
)

func (d *kafkaDelivery) finished() bool { return d.flags.Load()&leftBit != 0 }
func (d *kafkaDelivery) Error() error   { return d.err }

func (d *kafkaDelivery) Done() <-chan struct{} {
	if c := d.done.Load(); c != nil {
		return *c
	}
	c := make(chan struct{})
	if !d.done.CompareAndSwap(nil, &c) {
		return *d.done.Load()
	}
	if d.flags.Load()&finBit != 0 {
		d.close()
	}
	return c
}

func (d *kafkaDelivery) finish(err error) {
	d.err = err
	d.flags.Or(finBit)
	if d.done.Load() != nil {
		d.close()
	}
	d.flags.Or(leftBit)
}

func (d *kafkaDelivery) close() {
	if d.flags.Or(closedBit)&closedBit == 0 {
		close(*d.done.Load())
	}
}

// kafkaLink is one producer client.
type kafkaLink struct {
	b      *Kafka
	cl     *kgo.Client
	ctx    context.Context // records are produced under it; canceled when the link breaks
	cancel context.CancelFunc

	serialLo, serialHi uint64 // from the session before; read-only here

	progCh  chan struct{} // see progress
	pending atomic.Int64  // records sent whose promise has not been called

	// Records are gathered here (see push) and handed to franz-go a batch
	// at a time. Handed one at a time, as the forwarder reads them, they
	// would not fill batches: franz-go sends whatever it holds as soon as
	// a broker can take a request, without lingering, while it is told to
	// flush.
	staged    []*kafkaOut
	outs      outStore
	batchSize int             // batch.max_messages: staged records are handed on at this many
	lingering bool            // records were handed on to linger, and not sent at once since
	now       context.Context // canceled: Flush with it sends what is buffered, and returns
	stamps    stamper         // send's
	dels      deliveries
	sends     atomic.Uint64 // how many times records were sent at once (see OnProduceRecordPartitioned)
	resend    atomic.Bool   // a send for records partitioned late is under way

	lostCh chan struct{}
	mu     sync.Mutex
	err    error  // the first failure
	lo, hi uint64 // seqs that failed with errors that may not be theirs
}

func (l *kafkaLink) lost() <-chan struct{} { return l.lostCh }
func (l *kafkaLink) closedByPeer() bool    { return false }

// failure returns the error that broke the link, and the range of messages
// to send one at a time in the next session (hi 0: none).
func (l *kafkaLink) failure() (error, uint64, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err, l.lo, l.hi
}

// broken ends the session on the first record that failed without a drop.
// Canceling the produce context fails whatever franz-go has not yet sent,
// so that no record after the failed one is written before it is resent.
func (l *kafkaLink) broken(seq uint64, err error, suspect bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if suspect {
		if l.lo == 0 || seq < l.lo {
			l.lo = seq
		}
		l.hi = max(l.hi, seq)
	}
	if l.err != nil {
		return
	}
	l.err = fmt.Errorf("record seq %d: %w", seq, err)
	l.cancel()
	close(l.lostCh)
}

func (l *kafkaLink) send(m *storage.Message) (delivery, error) {
	b := l.b
	mp := b.mapping(m.Topic)
	if mp == nil {
		return nil, drop(DropNoRoute, errors.New("no forward route of the bridge matches the topic"))
	}
	if mp.invalid != nil {
		return nil, drop(DropInvalidTopic, mp.invalid)
	}
	// out goes back to l.outs in its promise: from Produce on, only d is
	// this function's.
	out := l.outs.get()
	rec := out.record(mp, b.gatewayID, m, &l.stamps)
	if n := recordBatchSize(rec); n > int(b.maxBatch) {
		l.outs.put(out)
		return nil, drop(DropTooLarge, fmt.Errorf("%w: a batch of this record alone is %d bytes; batch.max_bytes is %d", kerr.MessageTooLarge, n, b.maxBatch))
	}
	serial := l.serialHi != 0 && m.Seq >= l.serialLo && m.Seq <= l.serialHi
	if serial {
		// Alone: nothing else buffered or in flight, so that a failure
		// can only be this record's.
		l.hand(true)
		if err := l.cl.Flush(l.ctx); err != nil {
			return nil, fmt.Errorf("waiting for records in flight: %w", err)
		}
	}
	d := l.dels.next() // only for a message sent: the forwarder harvests in this order
	out.seq, out.l, out.d, out.serial = m.Seq, l, d, serial
	l.pending.Add(1)
	l.staged = append(l.staged, out)
	if serial || len(l.staged) >= l.batchSize {
		l.hand(true) // a message sent alone is not to linger either
	}
	if serial { // (out may be back in l.outs by now)
		select {
		case <-d.Done():
		case <-l.lostCh:
		case <-l.ctx.Done():
		}
	}
	return d, nil
}

// deliveries hands out a link's deliveries, in the order of its sends,
// slabSize at a time: one allocation per message would be most of what a
// drain allocates, and so of its collection work. The forwarder harvests
// deliveries in the same order (see harvested); a slab all of whose
// deliveries are harvested is reused, so that a drain allocates none.
type deliveries struct {
	cur       []kafkaDelivery   // being handed out: len of them so far
	used      [][]kafkaDelivery // slabs handed out from, oldest first (cur last), not all harvested
	harvested int               // deliveries of used[0] harvested
	free      [][]kafkaDelivery
}

func (ds *deliveries) next() *kafkaDelivery {
	if len(ds.cur) == cap(ds.cur) {
		if n := len(ds.free); n > 0 {
			ds.cur, ds.free = ds.free[n-1], ds.free[:n-1]
		} else {
			ds.cur = make([]kafkaDelivery, 0, slabSize)
		}
		ds.used = append(ds.used, ds.cur)
	}
	ds.cur = ds.cur[:len(ds.cur)+1]
	return &ds.cur[len(ds.cur)-1]
}

// done: the forwarder has harvested the n oldest deliveries not harvested
// before, each finished (its promise has let go of it), and holds them no
// more.
func (ds *deliveries) done(n int) {
	ds.harvested += n
	for ds.harvested >= slabSize && len(ds.used) > 0 {
		s := ds.used[0][:slabSize]
		clear(s)
		ds.free = append(ds.free, s[:0])
		ds.used = append(ds.used[:0], ds.used[1:]...)
		ds.harvested -= slabSize
	}
}

const slabSize = 256

// push hands franz-go the records gathered since the last push (see
// batcher). When full, it sends them, and any still lingering, at once;
// otherwise they linger for batch.max_delay, for more to fill their
// batches.
func (l *kafkaLink) push(full bool) {
	if len(l.staged) > 0 || full && l.lingering {
		l.hand(full)
	}
}

// hand produces the staged records, in order, and sends them at once if
// now is set.
func (l *kafkaLink) hand(now bool) {
	var send uint64 // the send that takes them; 0: none, they linger
	if now {
		send = l.sends.Load() + 1
	}
	// The records' timestamp is when they are produced, as franz-go would
	// set it, read once for the batch rather than by franz-go for each.
	ts := time.Now().Truncate(time.Millisecond)
	for i, o := range l.staged {
		o.send = send
		o.rec.Timestamp = ts
		l.cl.Produce(l.ctx, &o.rec, promise) // o may be back in l.outs once this returns
		l.staged[i] = nil
	}
	l.staged = l.staged[:0]
	if !now {
		l.lingering = true
		return
	}
	l.sendNow()
	l.lingering = false
}

// sendNow sends what franz-go holds at once. Flush with a canceled context
// ends every linger, so that each broker's next request takes all that is
// buffered, and returns at once. (Flush until done would keep franz-go
// flushing: it would send each record as soon as it is produced, in
// batches of a few.) The count goes up first: a record partitioned after
// it is counted may have missed this send (see OnProduceRecordPartitioned).
func (l *kafkaLink) sendNow() {
	l.sends.Add(1)
	l.cl.Flush(l.now)
}

// OnProduceRecordPartitioned is franz-go's hook, called once a record is
// in its partition's buffer. A record of a topic whose metadata franz-go
// has not loaded yet (the first of each topic in a session) waits for it,
// and is buffered only after the send meant to take it; there it would
// linger for batch.max_delay. Such a record is sent on its own send, made
// apart: the hook must not block.
func (l *kafkaLink) OnProduceRecordPartitioned(r *kgo.Record, _ int32) {
	if o := outOf(r); o.send == 0 || l.sends.Load() < o.send {
		return // lingers by design, or the send it waits for is still to come
	}
	if l.resend.CompareAndSwap(false, true) {
		go func() {
			l.resend.Store(false) // records partitioned from now on make another
			l.sendNow()
		}()
	}
}

// kafkaOut is one message on its way to Kafka: the record, its headers and
// the bytes of the per-message header values in one allocation, reused
// (outStore), for a drain of hundreds of thousands of messages a second;
// the delivery is apart (see kafkaDelivery).
type kafkaOut struct {
	rec    kgo.Record // first: see outOf
	hs     [5]kgo.RecordHeader
	buf    [48]byte // mqtt_qos, seq, received_at
	val    []byte   // the value: a copy of the payload, kept with o when small
	d      *kafkaDelivery
	seq    uint64
	serial bool
	send   uint64 // the send number that takes it at once; 0 while it lingers (see hand)
	l      *kafkaLink
}

// outOf is the kafkaOut of a record that franz-go hands back, in a promise
// or a hook: the record is the kafkaOut's first field. One promise function
// serves every record, so producing a record allocates no closure, and
// every record has the link's context, so nothing of a record's outlives
// it in franz-go (a wait for an unknown topic's metadata watches the first
// record's context, even after its promise).
func outOf(r *kgo.Record) *kafkaOut { return (*kafkaOut)(unsafe.Pointer(r)) }

// promise is every record's promise: franz-go calls promises one at a time,
// and they must not block.
func promise(r *kgo.Record, err error) { outOf(r).settle(err) }

func (o *kafkaOut) settle(err error) {
	d, l := o.d, o.l
	d.finish(l.outcome(o.seq, err, o.serial))
	l.pending.Add(-1)
	select {
	case l.progCh <- struct{}{}:
	default:
	}
	l.outs.put(o) // franz-go is done with the record once its promise is called
}

// outStore keeps a link's kafkaOuts for reuse: a drain of a backlog would
// otherwise allocate, and collect, hundreds of thousands of them a second.
// Promises give them back and the forwarder takes them, each side on its
// own list, swapped when the forwarder's runs out: one lock a batch on the
// forwarder's side. (A sync.Pool, put to on the promise's processor and
// taken from on the forwarder's, takes the slow path for nearly every
// record.) The forwarder empties it while idle (see rest), so that a
// drain's worth of them does not stay.
type outStore struct {
	mu    sync.Mutex
	freed []*kafkaOut // given back; guarded by mu
	free  []*kafkaOut // the forwarder's
}

func (s *outStore) get() *kafkaOut {
	if len(s.free) == 0 {
		s.mu.Lock()
		s.free, s.freed = s.freed, s.free
		s.mu.Unlock()
		if len(s.free) == 0 {
			return new(kafkaOut)
		}
	}
	o := s.free[len(s.free)-1]
	s.free[len(s.free)-1] = nil
	s.free = s.free[:len(s.free)-1]
	return o
}

// put gives o back. What record sets it sets whole, so o is not cleared,
// but for its delivery, which is handed out again once harvested (see
// deliveries).
func (s *outStore) put(o *kafkaOut) {
	o.d = nil
	if cap(o.val) > storage.ReuseMax {
		o.val = nil // a large value's buffer is not kept
	}
	s.mu.Lock()
	s.freed = append(s.freed, o)
	s.mu.Unlock()
}

// reset lets go of every kafkaOut kept.
func (s *outStore) reset() {
	s.mu.Lock()
	s.freed = nil
	s.mu.Unlock()
	s.free = nil
}

// kafkaMapping is where a local topic goes under a route.
type kafkaMapping struct {
	topic     string
	key       []byte // nil: the route has no key
	mqttTopic []byte // the mqtt_topic header's value
	invalid   error  // the topic is not a name Kafka accepts
}

// mapping returns where a local topic goes: under the first forward route
// that matches it, or nil when none does. It is worked out once per topic,
// not for each of a backlog's messages.
func (b *Kafka) mapping(topic string) *kafkaMapping {
	if mp, ok := b.mappings.lookup(nil, topic); ok {
		return mp
	}
	var mp *kafkaMapping
	for i := range b.opts.Config.Forward {
		r := &b.opts.Config.Forward[i]
		if !route.Match(r.From, topic) {
			continue
		}
		gw := string(b.gatewayID)
		mp = &kafkaMapping{topic: r.TopicTemplate.Expand(topic, gw), mqttTopic: []byte(topic)}
		if r.Key != "" {
			mp.key = []byte(r.KeyTemplate.Expand(topic, gw))
		}
		mp.invalid = validKafkaTopic(mp.topic)
		break
	}
	b.mappings.add(nil, topic, mp)
	return mp
}

// rest: the forwarder has nothing in flight and waits for messages. The
// kafkaOuts kept for reuse go: a live message now and then needs none of a
// drain's thousands.
func (l *kafkaLink) rest() {
	l.outs.reset()
	l.dels.free = nil
}

// harvested: the forwarder is done with the oldest n deliveries.
func (l *kafkaLink) harvested(n int) { l.dels.done(n) }

// copies: send copies the payload into the record (see copier).
func (l *kafkaLink) copies() {}

// outstanding is how many records are produced and not yet settled (see
// counter). Not franz-go's BufferedProduceRecords: that count drops only
// after the promise has returned, so a forwarder woken by the promise's
// progress signal would read it one too high.
func (l *kafkaLink) outstanding() int { return int(l.pending.Load()) }

// progress is signalled when records finish: partitions finish out of
// order, and the forwarder may send more before the oldest is done.
func (l *kafkaLink) progress() <-chan struct{} { return l.progCh }

// outcome decides what a record's result means: nil (written), a drop, or
// an error that ends the session so that the record is sent again.
func (l *kafkaLink) outcome(seq uint64, err error, alone bool) error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.TopicAuthorizationFailed:
			return drop(DropUnauthorized, err)
		case kerr.InvalidTopicException:
			return drop(DropInvalidTopic, err)
		case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord:
			if alone {
				reason := DropTooLarge
				if ke == kerr.InvalidRecord {
					reason = DropInvalidRecord
				}
				return drop(reason, err)
			}
			l.broken(seq, err, true)
			return err
		}
	}
	l.broken(seq, err, false)
	return err
}

// record fills in o's record for m: value the payload as is, key from the
// route, headers for consumers that de-duplicate and trace. The values of
// the headers that differ per message live in o.buf; the others are the
// mapping's, shared by every message of the topic.
func (o *kafkaOut) record(mp *kafkaMapping, gatewayID []byte, m *storage.Message, st *stamper) *kgo.Record {
	buf := append(o.buf[:0], '0'+m.QoS)
	buf = strconv.AppendUint(buf, m.Seq, 10)
	seq := len(buf)
	buf = st.append(buf, m.ReceivedAt)
	o.hs = [5]kgo.RecordHeader{
		{Key: "mqtt_topic", Value: mp.mqttTopic},
		{Key: "mqtt_qos", Value: buf[0:1:1]},
		{Key: "gateway_id", Value: gatewayID},
		{Key: "seq", Value: buf[1:seq:seq]},
		{Key: "received_at", Value: buf[seq:]},
	}
	hs := o.hs[:]
	for _, p := range m.Props {
		hs = append(hs, kgo.RecordHeader{Key: p.Key, Value: []byte(p.Value)})
	}
	o.val = append(o.val[:0], m.Payload...)
	if o.val == nil {
		o.val = []byte{} // an empty value; nil would be a null one, a tombstone to a compacted topic
	}
	o.rec = kgo.Record{Topic: mp.topic, Key: mp.key, Value: o.val, Headers: hs}
	return &o.rec
}

// stamper appends received_at values. The messages of a backlog come in
// time order, hundreds to a second: it keeps the text of the last second
// and writes only the milliseconds for the others.
type stamper struct {
	sec  int64    // Unix second of text
	text [20]byte // 2006-01-02T15:04:05.
	set  bool
}

// append appends t as appendMillisUTC does.
func (s *stamper) append(b []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	sec, frac := ms/1000, ms%1000
	if frac < 0 { // before 1970: the second below
		sec, frac = sec-1, frac+1000
	}
	if !s.set || sec != s.sec {
		s.sec, s.set = sec, true
		copy(s.text[:], appendMillisUTC(nil, time.UnixMilli(sec*1000)))
	}
	b = append(b, s.text[:]...)
	return append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), 'Z')
}

// appendMillisUTC appends t as RFC 3339 in UTC with milliseconds
// (2006-01-02T15:04:05.000Z, 24 bytes), for years 0 to 9999; it is
// time.Format's result, several times faster.
func appendMillisUTC(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	d := func(b []byte, v, n int) []byte {
		for i := n - 1; i >= 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		return b
	}
	var a [24]byte
	d(a[0:4], year, 4)
	a[4] = '-'
	d(a[5:7], int(month), 2)
	a[7] = '-'
	d(a[8:10], day, 2)
	a[10] = 'T'
	d(a[11:13], hour, 2)
	a[13] = ':'
	d(a[14:16], minute, 2)
	a[16] = ':'
	d(a[17:19], sec, 2)
	a[19] = '.'
	d(a[20:23], ms, 3)
	a[23] = 'Z'
	return append(b, a[:]...)
}

// validKafkaTopic checks an expanded topic name the way brokers do.
func validKafkaTopic(t string) error {
	switch {
	case t == "":
		return errors.New("the topic template expands to an empty topic name")
	case len(t) > 249:
		return fmt.Errorf("topic name %.40q... is %d characters; Kafka allows 249", t, len(t))
	case t == "." || t == "..":
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	for _, c := range []byte(t) {
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("topic name %q: Kafka allows only a-z, A-Z, 0-9, ., _ and -", t)
		}
	}
	return nil
}

// recordBatchSize is, to within a few bytes over, the size franz-go gives
// a batch holding rec alone, which must not exceed its batch limit.
func recordBatchSize(rec *kgo.Record) int {
	const batchOverhead = 61 + 8 // franz-go's recordBatchOverhead, plus slack for request framing
	vl := func(n int) int {      // varint length of n, zigzag encoded
		l, u := 1, uint64(n)<<1
		for ; u >= 0x80; u >>= 7 {
			l++
		}
		return l
	}
	n := 1 + 1 + 1 + vl(len(rec.Key)) + len(rec.Key) + vl(len(rec.Value)) + len(rec.Value) + vl(len(rec.Headers))
	for _, h := range rec.Headers {
		n += vl(len(h.Key)) + len(h.Key) + vl(len(h.Value)) + len(h.Value)
	}
	return batchOverhead + vl(n) + n
}
