package bridge

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/storage"
)

// TestKafkaSlowPartitionDoesNotStallOthers: while the broker that leads one
// partition holds back every produce request it receives, the other
// partitions go on receiving records: clearly more than 2 × max_messages
// past the held partition's oldest record (the window counts messages in
// flight, not the distance from the oldest unacknowledged one). Once the
// broker answers, every message arrives once, in queue order per key, and
// the bridge is drained.
func TestKafkaSlowPartitionDoesNotStallOthers(t *testing.T) {
	const n, sensors, maxMessages, parts, topic = 2000, 16, 50, 6, "telemetry"
	// The old window let the other partitions get at most 2 × max_messages
	// records past the held one's oldest (plus the few before it); now up
	// to 8 × max_messages may be outstanding.
	const want = 4 * maxMessages
	c := bridgetest.NewKafka(t, 3, kfake.SeedTopics(parts, topic))

	// The held partition is the one with the fewest keys (at least one):
	// most of the traffic goes elsewhere. Its leader leads nothing else.
	keys := make([]int, parts)
	tp := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	for k := range sensors {
		rec := &kgo.Record{Topic: topic, Key: []byte(kafkaGateway + "/s" + strconv.Itoa(k))}
		keys[tp.Partition(rec, parts)]++
	}
	slowP := -1
	for p, k := range keys {
		if k > 0 && (slowP < 0 || k < keys[slowP]) {
			slowP = p
		}
	}
	slow := c.LeaderFor(topic, int32(slowP))
	var others []int32
	for p := range int32(parts) {
		if l := c.LeaderFor(topic, p); l != slow && !slices.Contains(others, l) {
			others = append(others, l)
		}
	}
	if len(others) == 0 {
		t.Fatalf("every partition is led by node %d", slow)
	}
	for p := range int32(parts) {
		if p != int32(slowP) && c.LeaderFor(topic, p) == slow {
			if err := c.MoveTopicPartition(topic, p, others[int(p)%len(others)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("keys per partition %v; partition %d (node %d) is held", keys, slowP, slow)

	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	var held atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() != slow {
			return nil, nil, false
		}
		select {
		case <-release:
			c.DropControl()
			return nil, nil, false
		default:
		}
		held.Add(1)
		c.SleepControl(func() { <-release })
		return nil, nil, false // then the broker handles it as usual
	})

	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, sensorMsg(sensors))
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka: {brokers: %s}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    batch: {max_messages: 50, max_delay: 5ms}
    reconnect: {min: 20ms, max: 100ms}
`),
		GatewayID: kafkaGateway, Queue: qb,
	})
	t.Cleanup(releaseAll) // before the bridge stops: nothing stays asleep

	// counts returns the records written to the held partition and to the
	// others.
	counts := func() (slowN, othersN int64) {
		for _, pi := range c.PartitionInfos(topic) {
			if pi.Partition == int32(slowP) {
				slowN += pi.HighWatermark
			} else {
				othersN += pi.HighWatermark
			}
		}
		return slowN, othersN
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		slowN, othersN := counts()
		if slowN != 0 {
			t.Fatalf("partition %d has %d records while its produce requests are held", slowP, slowN)
		}
		if othersN >= want && held.Load() > 0 {
			t.Logf("%d records on the other partitions while partition %d is held (produce requests held: %d)", othersN, slowP, held.Load())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while partition %d is held (produce requests held: %d), the other partitions got %d records in 10s; want at least %d (2 × max_messages is %d): the held partition stalls the others; %+v",
				slowP, held.Load(), othersN, want, 2*maxMessages, b.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := b.Stats(); s.Pending == 0 || s.Forwarded >= n {
		t.Fatalf("drained while partition %d is held: %+v", slowP, s)
	}

	releaseAll()
	kafkaWait(t, 30*time.Second, "the drain", func() bool { s := b.Stats(); return s.Forwarded == n && s.Pending == 0 })
	if s := b.Stats(); !s.Up || len(s.Dropped) != 0 {
		t.Fatalf("after the drain: %+v", s)
	}
	if slowN, othersN := counts(); slowN+othersN != n || slowN == 0 {
		t.Fatalf("high watermarks: %d on partition %d, %d on the others; want %d in all", slowN, slowP, othersN, n)
	}
	recs := bridgetest.ConsumeAll(t, c.ListenAddrs(), topic, n, 30*time.Second)
	seqs, _ := checkRecords(t, recs, sensors, true, false)
	if len(seqs) != n || len(recs) != n {
		t.Fatalf("%d records, %d distinct messages; want %d", len(recs), len(seqs), n)
	}
}

// TestKafkaDrainSendsFullBatches: a backlog goes to the cluster in batches
// of max_messages, each sent as soon as it is gathered, not as records
// trickle back into the window, and not after max_delay (a minute here:
// the drain must not wait for it). A batch of 1,000 records spread over 4
// partitions makes about 4 partition batches in the cluster's requests
// (fewer when franz-go merges a partition's); at most 6 are allowed.
func TestKafkaDrainSendsFullBatches(t *testing.T) {
	const n, sensors, maxMessages, parts, topic = 20 * 1000, 8, 1000, 4, "telemetry"
	c := bridgetest.NewKafka(t, 3, kfake.SeedTopics(parts, topic))
	var reqs, batches, records atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		reqs.Add(1)
		for _, tp := range kr.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				// A v2 record batch: NumRecords is the int32 at byte 57.
				if len(p.Records) < 61 {
					t.Errorf("a produce request's batch is %d bytes", len(p.Records))
					continue
				}
				batches.Add(1)
				records.Add(int64(binary.BigEndian.Uint32(p.Records[57:61])))
			}
		}
		return nil, nil, false
	})

	q, qb := kafkaQueue(t)
	kafkaEnqueue(t, q, 0, n, sensorMsg(sensors))
	start := time.Now().Truncate(time.Millisecond)
	b := runKafka(t, Options{
		Config: kafkaBridgeConfig(t, c.ListenAddrs(), `  - name: lake
    kafka: {brokers: %s}
    forward:
      - {from: "sensors/#", topic: "telemetry", key: "{gateway_id}/{2}"}
    batch: {max_messages: 1000, max_bytes: 1MiB, max_delay: 1m}
`),
		GatewayID: kafkaGateway, Queue: qb,
	})
	kafkaWait(t, 30*time.Second, "the drain", func() bool { s := b.Stats(); return s.Forwarded == n && s.Pending == 0 })
	if got := records.Load(); got != n {
		t.Fatalf("the cluster took %d records in produce requests; want %d", got, n)
	}
	const most = n / maxMessages * parts * 3 / 2
	t.Logf("%d produce requests, %d partition batches, %.0f records per batch", reqs.Load(), batches.Load(), float64(n)/float64(batches.Load()))
	if got := batches.Load(); got > most {
		t.Fatalf("%d partition batches for %d records in batches of %d over %d partitions; want at most %d", got, n, maxMessages, parts, most)
	}
	end := time.Now()
	recs := bridgetest.ConsumeAll(t, c.ListenAddrs(), topic, n, 30*time.Second)
	if seqs, _ := checkRecords(t, recs, sensors, true, false); len(seqs) != n || len(recs) != n {
		t.Fatalf("%d records, %d distinct messages; want %d", len(recs), len(seqs), n)
	}
	// A record's timestamp is when it was produced (not when the message
	// was received: a broker refuses timestamps far in the past).
	for _, r := range recs {
		if r.Timestamp.Before(start) || r.Timestamp.After(end) {
			seq, _ := header(r, "seq")
			t.Fatalf("record seq %s: timestamp %v, outside the drain (%v to %v)", seq, r.Timestamp, start, end)
		}
	}
}

// TestKafkaDeliveryDone: a delivery's channel, made by whichever of the
// forwarder's wait and the promise comes first, is the same one each time
// and closed exactly once, when the record is finished, however the two
// interleave.
func TestKafkaDeliveryDone(t *testing.T) {
	for i := range 2000 {
		d := new(kafkaDelivery)
		if i%2 == 0 {
			select {
			case <-d.Done():
				t.Fatal("channel closed before the record is finished")
			default:
			}
		}
		var wg sync.WaitGroup
		chans := make(chan (<-chan struct{}), 2)
		for range 2 {
			wg.Go(func() { chans <- d.Done() })
		}
		want := errors.New("refused")
		wg.Go(func() { d.finish(want) })
		wg.Wait() // a second close would have panicked
		close(chans)
		a, b := <-chans, <-chans
		if a != b {
			t.Fatal("Done returned two channels")
		}
		select {
		case <-a:
		default:
			t.Fatal("finished delivery's channel not closed")
		}
		if !d.finished() || d.Error() != want {
			t.Fatalf("finished %v, error %v", d.finished(), d.Error())
		}
	}
}

// TestOutStore: kafkaOuts given back are handed out again, without the
// delivery they had (deliveries are allocated in slabs, which one kept
// kafkaOut would pin) or a value buffer over storage.ReuseMax; after reset
// none is.
func TestOutStore(t *testing.T) {
	var s outStore
	a, b := s.get(), s.get()
	if a == b {
		t.Fatal("two gets returned one kafkaOut")
	}
	a.d, b.d = new(kafkaDelivery), new(kafkaDelivery)
	a.val, b.val = make([]byte, 10, 64), make([]byte, storage.ReuseMax+1)
	s.put(a)
	s.put(b)
	got := map[*kafkaOut]bool{s.get(): true, s.get(): true}
	if !got[a] || !got[b] {
		t.Fatal("the kafkaOuts given back were not handed out again")
	}
	if a.d != nil || b.d != nil {
		t.Fatal("a kafkaOut given back keeps its delivery")
	}
	if cap(a.val) != 64 || b.val != nil {
		t.Fatalf("value buffers kept: %d bytes (want the small one's 64), %d (want none)", cap(a.val), cap(b.val))
	}
	s.put(a)
	s.reset()
	if c := s.get(); c == a {
		t.Fatal("a kafkaOut given back before reset was handed out after it")
	}
}

// TestDeliveriesReused: deliveries come from slabs that are reused, zeroed,
// once the forwarder has harvested every delivery of one, and not before.
func TestDeliveriesReused(t *testing.T) {
	var ds deliveries
	first := ds.next()
	first.finish(errors.New("refused"))
	for range slabSize - 1 {
		ds.next().finish(nil)
	}
	second := ds.next() // a new slab: none of the first's is harvested
	ds.done(slabSize - 1)
	if d := ds.next(); d == first {
		t.Fatal("a slab was reused before all of its deliveries were harvested")
	}
	ds.done(1)
	for range slabSize - 2 {
		ds.next()
	}
	if d := ds.next(); d != first {
		t.Fatal("a harvested slab was not reused")
	} else if d.finished() || d.Error() != nil || d.done.Load() != nil {
		t.Fatal("a reused delivery is not zeroed")
	}
	if second == first {
		t.Fatal("two deliveries handed out at once are one")
	}
}
