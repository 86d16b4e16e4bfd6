package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outpost-edge/outpost/storage"
)

// The field chaos test's auditor. It sees the ends of the pipe: what the
// sensors were acknowledged for, and what arrived at each of the two
// upstreams, the MQTT broker of the cloud bridge and the Kafka cluster of
// the lake bridge (over MQTT each message's JSON envelope carries
// gateway_id and seq, over Kafka its headers do; the payload carries the
// sensor's id and counter). Both bridges forward every sensor message: it
// is stored once, under one seq, and must arrive at both. In between it knows, per queue file (an
// "epoch": a new one starts when a corrupt file is moved aside), the range
// of sequence numbers the queue handed out and its persisted drop counters.
//
// The accounting, in sequence-number space (which the queue controls):
//   - every seq of an epoch, lo < seq <= hi, was assigned to exactly one
//     stored message (seqs are consecutive within a file; a rolled-back
//     commit assigns none);
//   - at the end the queue is drained, so each seq either arrived at both
//     upstreams or vanished (from one of them or both: the queue drops a
//     message, not a message for one bridge, so a drop_oldest eviction of a
//     message that one bridge had already delivered is gone for the other); a vanished seq was dropped by a policy (and counted in the
//     file's queue_full/max_age/corrupt counters) or was in the corrupted
//     file when it was moved aside (the expected corruption figure, known
//     exactly from a read of the file before its bytes were flipped);
//   - so per epoch: vanished - lost-with-the-file <= counted drops. The
//     difference is messages that were counted as dropped after they had
//     already arrived upstream (sent, then the link was cut before the
//     upstream's PUBACK came back, then evicted by drop_oldest): reported,
//     not an error. A vanished seq beyond the counters is an uncounted loss.
//
// Per upstream, the order: a seq arriving for the first time is above every
// seq that arrived before it (per Kafka partition), and a sensor's messages
// arrive in the order it sent them. A message carries the same seq at both.
//
// And in message space: every acknowledged message arrived at both
// upstreams, or
// was in the corrupted file (expected), or must be one of the counted
// vanished seqs. That last set is checked both globally (acked-dropped <=
// counted vanished seqs) and locally: between the sensor's neighbouring
// delivered messages (seqs s1 < s2) there must be at least as many
// vanished seqs as the sensor has acknowledged, undelivered messages
// there, because a sensor's messages are stored in the order it sent them.

// msgID is a sensor's message: the sensor and its counter.
type msgID struct{ sensor, n uint32 }

func (m msgID) String() string { return fmt.Sprintf("s%d-%d", m.sensor, m.n) }

type arrival struct {
	seq  uint64
	id   msgID
	part int32 // the Kafka partition; 0 over MQTT
}

// The upstreams, by the name the auditor gives them.
const (
	upMQTT  = "mqtt"
	upKafka = "kafka"
)

var upstreams = []string{upMQTT, upKafka}

// epoch is one queue file's life: seqs lo+1..hi.
type epoch struct {
	lo, hi  uint64
	dropped map[string]uint64
	// inFile, for a file that was corrupted, is what it held then.
	inFile map[uint64]msgID
}

type auditor struct {
	gateway string
	mu      sync.Mutex
	acked   map[msgID]bool
	sent    int
	refused int                  // negative acknowledgements (MQTT 5 0x97)
	arr     map[string][]arrival // by upstream
	bad     []string
}

func newAuditor(gateway string) *auditor {
	return &auditor{gateway: gateway, acked: map[msgID]bool{}, arr: map[string][]arrival{}}
}

func (a *auditor) published() {
	a.mu.Lock()
	a.sent++
	a.mu.Unlock()
}

func (a *auditor) ack(id msgID) {
	a.mu.Lock()
	a.acked[id] = true
	a.mu.Unlock()
}

func (a *auditor) nack() {
	a.mu.Lock()
	a.refused++
	a.mu.Unlock()
}

type chaosPayload struct {
	S uint32 `json:"s"`
	N uint32 `json:"n"`
}

// upstream records one message that arrived at the upstream broker.
func (a *auditor) upstream(pk packets.Packet) {
	var e struct {
		GatewayID string       `json:"gateway_id"`
		Seq       uint64       `json:"seq"`
		Topic     string       `json:"topic"`
		Payload   chaosPayload `json:"payload"`
	}
	err := json.Unmarshal(pk.Payload, &e)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err != nil:
		a.bad = append(a.bad, fmt.Sprintf("mqtt: not an envelope (%v): %.200s", err, pk.Payload))
	case e.GatewayID != a.gateway || e.Seq == 0:
		a.bad = append(a.bad, fmt.Sprintf("mqtt: gateway %q seq %d: %.200s", e.GatewayID, e.Seq, pk.Payload))
	case e.Topic != sensorTopic(e.Payload.S) || pk.TopicName != "site/"+a.gateway+"/"+e.Topic:
		a.bad = append(a.bad, fmt.Sprintf("mqtt: topic %s (local %s) for sensor %d", pk.TopicName, e.Topic, e.Payload.S))
	default:
		a.arr[upMQTT] = append(a.arr[upMQTT], arrival{e.Seq, msgID{e.Payload.S, e.Payload.N}, 0})
	}
}

// kafka records one record that arrived in the Kafka cluster.
func (a *auditor) kafka(r *kgo.Record) {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	seq, err := strconv.ParseUint(h["seq"], 10, 64)
	id, ok := parsePayload(r.Value)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !ok:
		a.bad = append(a.bad, fmt.Sprintf("kafka %d@%d: not a sensor payload: %.200s", r.Partition, r.Offset, r.Value))
	case err != nil || seq == 0 || h["gateway_id"] != a.gateway:
		a.bad = append(a.bad, fmt.Sprintf("kafka %d@%d: headers %v", r.Partition, r.Offset, h))
	case h["mqtt_topic"] != sensorTopic(id.sensor) || string(r.Key) != fmt.Sprintf("%s/s%d", a.gateway, id.sensor):
		a.bad = append(a.bad, fmt.Sprintf("kafka %d@%d: topic %s key %s for sensor %d", r.Partition, r.Offset, h["mqtt_topic"], r.Key, id.sensor))
	default:
		a.arr[upKafka] = append(a.arr[upKafka], arrival{seq, id, r.Partition})
	}
}

func (a *auditor) arrivals() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, arr := range a.arr {
		n += len(arr)
	}
	return n
}

func sensorTopic(s uint32) string { return fmt.Sprintf("sensors/s%d/telemetry", s) }

// parsePayload reads a sensor payload (from the queue file).
func parsePayload(p []byte) (msgID, bool) {
	var c chaosPayload
	if json.Unmarshal(p, &c) != nil || c.N == 0 {
		return msgID{}, false
	}
	return msgID{c.S, c.N}, true
}

// auditReport is what the auditor found at one upstream.
type auditReport struct {
	upstream              string
	sent, acked, refused  int
	delivered             int // acknowledged messages that arrived upstream
	deliveredUnacked      int // arrived, but the sensor never saw the ack (kill, cut)
	arrivals, duplicates  int
	storedTwice           int // one message under two seqs
	droppedAcked          int // acknowledged, never arrived, vanished under a counted drop
	corruptExpected       int // acknowledged, in the corrupted file, never arrived
	lost                  int // acknowledged and unexplained
	vanished, counted     uint64
	droppedAfterDelivery  uint64
	uncounted             uint64 // vanished seqs beyond the drop counters
	localDeficit          int
	drops                 map[string]uint64
	failures              []string
	orderErrs, sensorErrs int

	seqOf map[msgID]uint64 // the seq each delivered message arrived with
}

func (r *auditReport) fail(format string, args ...any) {
	if len(r.failures) < 20 {
		r.failures = append(r.failures, r.upstream+": "+fmt.Sprintf(format, args...))
	}
}

// audit checks the run at each upstream; epochs are in order and cover
// every seq used. The last report is the test's own (not an upstream's):
// the checks across upstreams, and failures of the run itself.
func (a *auditor) audit(epochs []epoch) []*auditReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rs []*auditReport
	for _, up := range upstreams {
		rs = append(rs, a.auditOne(up, a.arr[up], epochs))
	}
	x := &auditReport{upstream: "run"}
	for _, b := range a.bad {
		x.fail("bad upstream message: %s", b)
	}
	// One message, one seq, wherever it arrives.
	n := 0
	for id, s := range rs[0].seqOf {
		if s2, ok := rs[1].seqOf[id]; ok && s2 != s {
			if n++; n <= 5 {
				x.fail("%v arrived with seq %d at %s and seq %d at %s", id, s, rs[0].upstream, s2, rs[1].upstream)
			}
		}
	}
	return append(rs, x)
}

// auditOne checks the arrivals at one upstream.
func (a *auditor) auditOne(name string, arr []arrival, epochs []epoch) *auditReport {
	r := &auditReport{upstream: name, sent: a.sent, acked: len(a.acked), refused: a.refused, arrivals: len(arr), drops: map[string]uint64{}}

	// Arrival order: a seq seen for the first time is above every seq seen
	// before in its partition (order per route, across restarts); resends
	// repeat the same message under the same seq; a sensor's messages take
	// seqs in the order it sent them.
	first := map[uint64]msgID{}
	seqOf := map[msgID]uint64{}
	lastN := map[uint32]uint32{}
	maxFirst := map[int32]uint64{}
	for i, ar := range arr {
		if id, ok := first[ar.seq]; ok {
			r.duplicates++
			if id != ar.id {
				r.fail("arrival %d: seq %d carries %v, earlier %v", i, ar.seq, ar.id, id)
			}
			continue
		}
		if ar.seq < maxFirst[ar.part] {
			if r.orderErrs++; r.orderErrs <= 5 {
				r.fail("arrival %d (partition %d): seq %d arrived for the first time after seq %d", i, ar.part, ar.seq, maxFirst[ar.part])
			}
		}
		first[ar.seq], maxFirst[ar.part] = ar.id, max(maxFirst[ar.part], ar.seq)
		if _, ok := seqOf[ar.id]; ok {
			r.storedTwice++
			continue
		}
		seqOf[ar.id] = ar.seq
		if ar.id.n <= lastN[ar.id.sensor] {
			if r.sensorErrs++; r.sensorErrs <= 5 {
				r.fail("arrival %d: %v (seq %d) after %v: sensor order broken", i, ar.id, ar.seq, msgID{ar.id.sensor, lastN[ar.id.sensor]})
			}
		}
		lastN[ar.id.sensor] = max(lastN[ar.id.sensor], ar.id.n)
	}
	r.seqOf = seqOf

	// Sequence space, per epoch.
	corruptIDs := map[msgID]bool{}
	var vanishedSeqs []uint64 // not delivered, not lost with a file: counted drops
	for i, e := range epochs {
		if i > 0 && e.lo < epochs[i-1].hi {
			r.fail("epoch %d starts at seq %d, below the previous file's last seq %d", i, e.lo+1, epochs[i-1].hi)
		}
		var withFile, gone uint64
		for s := e.lo + 1; s <= e.hi; s++ {
			if _, ok := first[s]; ok {
				continue
			}
			if id, ok := e.inFile[s]; ok {
				withFile++
				corruptIDs[id] = true
				continue
			}
			gone++
			vanishedSeqs = append(vanishedSeqs, s)
		}
		var x uint64
		for k, v := range e.dropped {
			r.drops[k] += v
			x += v
		}
		r.vanished += gone
		r.counted += min(gone, x)
		if gone > x {
			r.uncounted += gone - x
			r.fail("queue file %d (seq %d..%d): %d seqs never arrived upstream, not in a corrupted file, but only %d drops counted", i, e.lo+1, e.hi, gone, x)
		} else {
			r.droppedAfterDelivery += x - gone
		}
	}
	for s := range first {
		if !slices.ContainsFunc(epochs, func(e epoch) bool { return e.lo < s && s <= e.hi }) {
			r.fail("seq %d arrived upstream but no queue file ever assigned it", s)
			break
		}
	}

	// Message space.
	bySensor := map[uint32][]uint32{}
	for id := range a.acked {
		bySensor[id.sensor] = append(bySensor[id.sensor], id.n)
	}
	for id := range seqOf {
		if !a.acked[id] {
			r.deliveredUnacked++
		}
	}
	for _, sensor := range slices.Sorted(maps.Keys(bySensor)) {
		ns := bySensor[sensor]
		slices.Sort(ns)
		// delivered counters of this sensor, for the neighbours
		var dn []uint32
		for id := range seqOf {
			if id.sensor == sensor {
				dn = append(dn, id.n)
			}
		}
		slices.Sort(dn)
		gaps := map[[2]uint64]int{}
		for _, n := range ns {
			id := msgID{sensor, n}
			if _, ok := seqOf[id]; ok {
				r.delivered++
				continue
			}
			if corruptIDs[id] {
				r.corruptExpected++
				continue
			}
			r.droppedAcked++
			j := sort.Search(len(dn), func(i int) bool { return dn[i] > n })
			var lo, hi uint64 = 0, ^uint64(0)
			if j > 0 {
				lo = seqOf[msgID{sensor, dn[j-1]}]
			}
			if j < len(dn) {
				hi = seqOf[msgID{sensor, dn[j]}]
			}
			gaps[[2]uint64{lo, hi}]++
		}
		for g, want := range gaps {
			i := sort.Search(len(vanishedSeqs), func(i int) bool { return vanishedSeqs[i] > g[0] })
			k := sort.Search(len(vanishedSeqs), func(i int) bool { return vanishedSeqs[i] >= g[1] })
			if have := k - i; have < want {
				r.localDeficit += want - have
				r.fail("sensor s%d: %d acknowledged messages between seqs %d and %d never arrived, but only %d seqs there were dropped", sensor, want, g[0], g[1], have)
			}
		}
	}
	if uint64(r.droppedAcked) > r.counted {
		r.lost = r.droppedAcked - int(r.counted)
	}
	r.lost = max(r.lost, r.localDeficit)
	if r.lost > 0 {
		r.fail("%d acknowledged messages lost: %d acked, %d delivered, %d in the corrupted file, %d not delivered but only %d counted drops cover them",
			r.lost, r.acked, r.delivered, r.corruptExpected, r.droppedAcked, r.counted)
	}
	if r.delivered+r.droppedAcked+r.corruptExpected != r.acked {
		r.fail("accounting: %d delivered + %d dropped + %d corrupt != %d acked", r.delivered, r.droppedAcked, r.corruptExpected, r.acked)
	}
	return r
}

func (r *auditReport) dropsString() string {
	var parts []string
	for _, k := range []string{storage.ReasonQueueFull, storage.ReasonMaxAge, storage.ReasonCorrupt} {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.drops[k]))
	}
	return strings.Join(parts, " ")
}
