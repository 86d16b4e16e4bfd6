package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/broker/brokertest"
	"github.com/outpost-edge/outpost/storage"
)

// The ingest workload: benchPublishers connections, each keeping up to
// benchWindow QoS 1 messages of benchPayload bytes in flight.
const (
	benchPublishers = 10
	benchWindow     = 100
	benchPayload    = 64
)

// benchMessages is the number of messages one run publishes, from
// OUTPOST_BENCH_MESSAGES (CI sets a small count), else def.
func benchMessages(b *testing.B, def int) int {
	b.Helper()
	s := os.Getenv("OUTPOST_BENCH_MESSAGES")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < benchPublishers {
		b.Fatalf("OUTPOST_BENCH_MESSAGES=%q: want a count of at least %d", s, benchPublishers)
	}
	return n
}

// BenchmarkIngest measures how many QoS 1 messages per second the broker
// acknowledges from pipelining publishers over TCP, when every message is
// queued and fsynced before its PUBACK (sync=always), when the queue commits
// every 100ms and acknowledges first (sync=interval), and when no route
// matches, so that the messages take mochi's own path and never touch the
// queue (baseline=plain-mochi). The client is the same lean pipelining
// publisher in all three. The queued variants also report their rate as a
// fraction of the baseline's (x-plain-mochi) when the baseline ran.
func BenchmarkIngest(b *testing.B) {
	total := benchMessages(b, 200_000)
	// The baseline runs first so that the queued variants can report their
	// rate relative to it.
	var base float64
	for _, v := range []struct {
		name  string
		qo    storage.Options
		early bool
		route bool
	}{
		{name: "baseline=plain-mochi"},
		{name: "sync=always", route: true},
		{name: "sync=interval", qo: storage.Options{CommitInterval: 100 * time.Millisecond}, early: true, route: true},
	} {
		b.Run(v.name, func(b *testing.B) {
			rate := benchIngest(b, total, v.qo, v.early, v.route)
			switch {
			case !v.route:
				base = rate
			case base > 0:
				b.ReportMetric(rate/base, "x-plain-mochi")
				b.Logf("%s: %.0f msgs/s = %.2fx plain mochi (%.0f msgs/s)", v.name, rate, rate/base, base)
			}
		})
	}
}

// benchIngest runs the workload b.N times against a broker on a fresh queue
// and returns the acknowledged messages per second.
func benchIngest(b *testing.B, total int, qo storage.Options, early, route bool) float64 {
	qo.Bridges = []string{"cloud"}
	q, err := storage.Open(filepath.Join(b.TempDir(), "queue.db"), qo)
	if err != nil {
		b.Fatal(err)
	}
	cloud, err := q.Bridge("cloud")
	if err != nil {
		b.Fatal(err)
	}
	o := Options{
		Listeners:     []Listener{{Name: "bench", Type: "tcp", Address: "127.0.0.1:0"}},
		Queue:         q,
		AckBeforeSync: early,
		Route:         func(string) uint64 { return 0 },
	}
	if route {
		o.Route = func(string) uint64 { return cloud.Mask() }
	}
	br, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	defer func() {
		// mochi v2.7.9's Server.Close can deadlock when a client is being
		// removed at the same moment (Clients.GetByListener read-locks
		// twice; mochi-mqtt/server#488): let the publishers' connections
		// end first.
		if err := waitNoClients(br, 10*time.Second); err != nil {
			b.Error(err)
		}
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
		if err := q.Close(); err != nil {
			b.Errorf("closing queue: %v", err)
		}
	}()
	addr := br.Addrs()[0].String()

	before, err := q.Stats()
	if err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	var commits uint64 // commits that ended while publishers were timed
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		d, c, err := ingestRun(b, q, addr, i, total)
		if err != nil {
			b.Fatalf("run %d: %v", i, err)
		}
		elapsed += d
		commits += c
	}
	b.StopTimer()

	if s := br.Stats(); s.Refused != 0 {
		b.Fatalf("broker refused %d messages", s.Refused)
	}
	want := uint64(total) * uint64(b.N)
	if route {
		// With sync=interval the last messages were acknowledged before
		// their commit: wait for it.
		after, err := waitAppended(q, before.Appended+want, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if got := after.Appended - before.Appended; got != want {
			b.Fatalf("queue stored %d messages, want %d", got, want)
		}
		if got := after.Messages - before.Messages; got != want {
			b.Fatalf("queue holds %d new messages, want %d", got, want)
		}
		// One commit is one bbolt transaction: its pages and its meta
		// page are each fdatasynced.
		b.ReportMetric(float64(commits)/elapsed.Seconds(), "fsyncs/s")
		b.ReportMetric(float64(after.Appended-before.Appended)/float64(after.Commits-before.Commits), "msgs/commit")
	} else if after, _ := q.Stats(); after.Appended != before.Appended {
		b.Fatalf("baseline queued %d messages, want none", after.Appended-before.Appended)
	}
	rate := float64(want) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	return rate
}

// ingestRun connects the publishers, publishes total messages with the
// benchmark timer running and returns how long that took and how many
// commits ended meanwhile. The timer is stopped on return.
func ingestRun(b *testing.B, q *storage.Queue, addr string, run, total int) (time.Duration, uint64, error) {
	pubs := make([]*pipePublisher, 0, benchPublishers)
	defer func() {
		for _, pub := range pubs {
			pub.close()
		}
	}()
	for p := range benchPublishers {
		c, err := brokertest.Dial(addr, brokertest.Options{ClientID: fmt.Sprintf("bench-%d-%d", run, p), Clean: true})
		if err != nil {
			return 0, 0, err
		}
		pubs = append(pubs, newPipePublisher(c, fmt.Sprintf("sensors/bench/%d", p)))
	}
	st0, err := q.Stats()
	if err != nil {
		return 0, 0, err
	}

	b.StartTimer()
	start := time.Now()
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for p, pub := range pubs {
		n := total / benchPublishers
		if p < total%benchPublishers {
			n++
		}
		wg.Go(func() { errs[p] = pub.run(n, benchWindow) })
	}
	wg.Wait()
	d := time.Since(start)
	b.StopTimer()

	st1, err := q.Stats()
	if err != nil {
		return 0, 0, err
	}
	return d, st1.Commits - st0.Commits, errors.Join(errs...)
}

func waitNoClients(br *Broker, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for br.Stats().ClientsConnected > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d clients still connected after %v", br.Stats().ClientsConnected, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func waitAppended(q *storage.Queue, want uint64, limit time.Duration) (storage.Stats, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := q.Stats()
		if err != nil || st.Appended >= want {
			return st, err
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("queue appended %d messages after %v, want %d", st.Appended, limit, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pipePublisher is a lean MQTT 3.1.1 QoS 1 publisher: it writes one
// pre-encoded PUBLISH per message with only its packet id patched, flushes
// only when its window is full or it has sent everything, and reads the
// 4-byte PUBACKs on a second goroutine, so that the client adds as little as
// possible to the broker's figures.
type pipePublisher struct {
	c     *brokertest.Client
	frame []byte // PUBLISH, QoS 1
	idAt  int    // offset of the packet id in frame
}

// newPipePublisher takes over a connected client. The broker sends nothing
// after CONNACK until it acknowledges a PUBLISH, so the client's reader has
// nothing buffered and the connection can be read directly.
func newPipePublisher(c *brokertest.Client, topic string) *pipePublisher {
	rest := 2 + len(topic) + 2 + benchPayload
	if rest > 127 {
		panic("benchmark topic too long for a one-byte remaining length")
	}
	f := []byte{0x32, byte(rest)} // PUBLISH, QoS 1, no DUP, no retain
	f = binary.BigEndian.AppendUint16(f, uint16(len(topic)))
	f = append(f, topic...)
	idAt := len(f)
	f = append(f, 0, 0)
	for i := range benchPayload {
		f = append(f, byte('a'+i%26))
	}
	return &pipePublisher{c: c, frame: f, idAt: idAt}
}

// run publishes n messages with at most window unacknowledged, and returns
// when all n are acknowledged, in order, or on the first error.
func (p *pipePublisher) run(n, window int) error {
	slots := make(chan struct{}, window)
	failed := make(chan struct{})
	rerr := make(chan error, 1)
	go func() {
		err := p.readAcks(n, slots)
		if err != nil {
			close(failed)
			p.c.Close() // unblocks a writer stuck in Write
		}
		rerr <- err
	}()

	w := bufio.NewWriterSize(p.c.Conn, 32<<10)
	var id uint16
	var werr error
send:
	for range n {
		select {
		case slots <- struct{}{}:
		default:
			// The window is full: send what is buffered, then wait for an ack.
			if werr = w.Flush(); werr != nil {
				break send
			}
			select {
			case slots <- struct{}{}:
			case <-failed:
				break send
			}
		}
		if id++; id == 0 {
			id = 1
		}
		binary.BigEndian.PutUint16(p.frame[p.idAt:], id)
		if _, werr = w.Write(p.frame); werr != nil {
			break send
		}
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr != nil {
		p.c.Close()
	}
	if err := <-rerr; err != nil {
		return err
	}
	return werr
}

// readAcks reads n PUBACKs, checking that each acknowledges the oldest
// unacknowledged message (a server sends PUBACKs in PUBLISH order), and
// frees a window slot for each.
func (p *pipePublisher) readAcks(n int, slots <-chan struct{}) error {
	r := bufio.NewReaderSize(p.c.Conn, 32<<10)
	var ack [4]byte
	var want uint16
	for i := range n {
		if i%1024 == 0 {
			p.c.Conn.SetReadDeadline(time.Now().Add(time.Minute))
		}
		if _, err := io.ReadFull(r, ack[:]); err != nil {
			return fmt.Errorf("after %d of %d acks: %w", i, n, err)
		}
		if want++; want == 0 {
			want = 1
		}
		if ack[0] != 0x40 || ack[1] != 2 {
			return fmt.Errorf("after %d of %d acks: got packet % x, want PUBACK", i, n, ack)
		}
		if id := binary.BigEndian.Uint16(ack[2:]); id != want {
			return fmt.Errorf("after %d of %d acks: PUBACK for id %d, want %d", i, n, id, want)
		}
		<-slots
	}
	return nil
}

// close sends DISCONNECT and closes the connection.
func (p *pipePublisher) close() {
	p.c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	p.c.Conn.Write([]byte{0xe0, 0})
	p.c.Close()
}
