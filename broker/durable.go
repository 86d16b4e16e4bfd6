package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/storage"
)

// durableHook puts every message a bridge must forward into the queue, and
// withholds the acknowledgement of QoS 1/2 messages until their commit.
type durableHook struct {
	mqtt.HookBase
	b *Broker

	received   atomic.Uint64
	droppedACL atomic.Uint64
	refused    atomic.Uint64

	mu      sync.Mutex
	ackers  map[*mqtt.Client]*acker
	running sync.WaitGroup
}

func (h *durableHook) ID() string { return "outpost-durable" }

func (h *durableHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnDisconnect || b == mqtt.OnWillSent
}

// OnWillSent queues a will that a bridge route matches: mochi publishes a
// will to local subscribers without OnPublish, and a sensor's "offline"
// must reach the cloud like any message it sent. The will is in the next
// commit. Its sender is gone and will not send it again, so it is queued
// as already acknowledged: a full queue that refuses it counts it as a
// drop, not as a message its sender keeps.
func (h *durableHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	mask := h.b.routeOf(pk.TopicName)
	if mask == 0 {
		return
	}
	if _, err := h.b.opts.Queue.Enqueue(context.Background(), newMessage(pk, mask, true)); err != nil {
		h.b.log.Warn("will not queued for the bridges", "client", cl.ID, "topic", pk.TopicName, "error", err)
	}
}

// pendingAck is a message whose acknowledgement waits for its commit.
type pendingAck struct {
	pk     packets.Packet
	ticket *storage.Ticket
	early  bool // acknowledge without waiting for the commit (queue.sync: interval)
}

// ready reports whether p can be acknowledged now.
func (p *pendingAck) ready() bool {
	if p.early {
		return true
	}
	select {
	case <-p.ticket.Done():
		return true
	default:
		return false
	}
}

// result is what the acknowledgement says: an early one is a success (a
// later refusal by the commit is counted as a drop by the queue).
func (p *pendingAck) result() error {
	if p.early {
		return nil
	}
	_, err := p.ticket.Result()
	return err
}

// acker writes one client's acknowledgements in the order the client sent
// the messages, each once its commit has ended.
type acker struct {
	cl *mqtt.Client
	ch chan *pendingAck // pointers: a packet is large, the buffer is MaxInflight long
	// slots holds a token per QoS 1/2 message queued and not yet answered:
	// at MaxInflight, OnPublish waits, and so stops the client's reads.
	slots chan struct{}
}

// OnPublish runs in the client's read loop, before mochi acknowledges the
// message. Returning ErrRejectPacket tells mochi to neither acknowledge nor
// deliver it: the acker does both after the commit.
func (h *durableHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // Broker.Publish queued it already, or it is a replay
	}
	h.received.Add(1)
	mask := h.b.routeOf(pk.TopicName)
	if mask == 0 {
		return pk, nil
	}
	early := h.b.opts.AckBeforeSync
	var a *acker
	if pk.FixedHeader.Qos > 0 {
		// Backpressure on this client's reads, which TCP passes on to the
		// sensor: at most MaxInflight of its messages wait for a commit.
		a = h.ackerFor(cl)
		a.slots <- struct{}{}
	}
	// Enqueue blocks only while the committer is MaxPending messages behind,
	// all clients together.
	t, err := h.b.opts.Queue.Enqueue(context.Background(), newMessage(pk, mask, early))
	if err != nil {
		// The queue is closing: refuse rather than acknowledge.
		if pk.FixedHeader.Qos == 0 {
			h.b.log.Warn("queue closed; QoS 0 message not queued", "client", cl.ID, "topic", pk.TopicName)
			return pk, packets.ErrRejectPacket
		}
		h.refuse(cl, pk, err)
		<-a.slots
		return pk, packets.ErrRejectPacket
	}
	if pk.FixedHeader.Qos == 0 {
		return pk, nil // no ack: mochi delivers it now
	}
	// Even an early ack goes through the acker: it writes the acks that
	// have gathered in one syscall. The slot taken guarantees room.
	a.ch <- &pendingAck{pk: pk, ticket: t, early: early}
	return pk, packets.ErrRejectPacket
}

func (h *durableHook) ackerFor(cl *mqtt.Client) *acker {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.ackers[cl]; ok {
		return a
	}
	if h.ackers == nil {
		h.ackers = make(map[*mqtt.Client]*acker)
	}
	a := &acker{cl: cl, ch: make(chan *pendingAck, h.b.opts.MaxInflight), slots: make(chan struct{}, h.b.opts.MaxInflight)}
	h.ackers[cl] = a
	h.running.Go(func() { h.runAcker(a) })
	return a
}

// OnDisconnect runs in the client's read loop after its last packet: no
// OnPublish for cl can follow, so its acker's channel can be closed. The
// acker still finishes: the messages are in the queue either way.
func (h *durableHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	a, ok := h.ackers[cl]
	delete(h.ackers, cl)
	h.mu.Unlock()
	if ok {
		close(a.ch)
	}
}

func (h *durableHook) runAcker(a *acker) {
	var queue []*pendingAck // FIFO, in the client's order
	var buf []byte
	open := true
	for open || len(queue) > 0 {
		if len(queue) == 0 {
			p, ok := <-a.ch
			if !ok {
				return
			}
			queue = append(queue, p)
		}
		if !queue[0].early {
			<-queue[0].ticket.Done()
		}
		// Take what else has arrived, then every leading ack whose commit
		// has ended: they go out in one write, not one syscall each.
	drain:
		for len(queue) < cap(a.ch) {
			select {
			case p, ok := <-a.ch:
				if !ok {
					open = false
					break drain
				}
				queue = append(queue, p)
			default:
				break drain
			}
		}
		n := 0
		for n < len(queue) && queue[n].ready() {
			n++
		}
		buf = h.ackAll(a.cl, queue[:n], buf[:0])
		for range n {
			<-a.slots // answered: the client may send another
		}
		for _, p := range queue[:n] {
			if p.result() == nil {
				h.deliver(p.pk)
			}
		}
		clear(queue[:n])
		queue = append(queue[:0], queue[n:]...)
	}
}

// ackAll acknowledges committed messages with one write: PUBACK, or PUBREC
// with the inflight entry mochi's PUBREL handling expects (as mochi's own
// processPublish does). A success ack is 4 bytes in MQTT 3.1.1 and 5 alike.
// A refused message is answered in its place, after the acks before it.
func (h *durableHook) ackAll(cl *mqtt.Client, ps []*pendingAck, buf []byte) []byte {
	flush := func() {
		if len(buf) == 0 {
			return
		}
		// The client's lock is the one WritePacket holds: whole packets
		// never interleave. An error means the client is gone; it will
		// resend (at-least-once).
		cl.Lock()
		if !cl.Closed() {
			_, _ = cl.Net.Conn.Write(buf)
		}
		cl.Unlock()
		buf = buf[:0]
	}
	for _, p := range ps {
		if err := p.result(); err != nil {
			flush()
			h.refuse(cl, p.pk, err)
			continue
		}
		typ := byte(packets.Puback << 4)
		if p.pk.FixedHeader.Qos == 2 {
			typ = packets.Pubrec << 4
			rec := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: p.pk.PacketID, Created: time.Now().Unix()}
			if cl.State.Inflight.Set(rec) {
				atomic.AddInt64(&h.b.srv.Info.Inflight, 1)
			}
			cl.State.Inflight.DecreaseReceiveQuota()
		}
		buf = append(buf, typ, 2, byte(p.pk.PacketID>>8), byte(p.pk.PacketID))
	}
	flush()
	return buf
}

// deliver hands a committed message to local subscribers (and the retained
// store) through the replay client, which the hook lets pass.
func (h *durableHook) deliver(pk packets.Packet) {
	pk.Properties.TopicAliasFlag = false // resolved already; re-applying could undo a newer alias
	pk.Properties.TopicAlias = 0
	if err := h.b.srv.InjectPacket(h.b.replay, pk); err != nil {
		h.b.log.Warn("delivering committed message locally", "topic", pk.TopicName, "error", err)
	}
}

// refuse tells a client that a QoS 1/2 message was not stored. An MQTT 5
// client gets a negative acknowledgement; an MQTT 3.1.1 client, which has
// none, is disconnected without an acknowledgement, so the message stays
// with it and is sent again after it reconnects.
func (h *durableHook) refuse(cl *mqtt.Client, pk packets.Packet, err error) {
	h.refused.Add(1)
	code := packets.ErrUnspecifiedError
	if errors.Is(err, storage.ErrFull) {
		code = packets.ErrQuotaExceeded
	}
	h.b.log.Warn("message refused; the client keeps it", "client", cl.ID, "topic", pk.TopicName, "reason", code.Reason)
	if cl.Properties.ProtocolVersion == 5 {
		typ := packets.Puback
		if pk.FixedHeader.Qos == 2 {
			typ = packets.Pubrec
		}
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: typ},
			PacketID:    pk.PacketID,
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		})
		return
	}
	cl.Stop(code) // 3.1.1 has no server DISCONNECT: just close
}

// wait returns when every acker has finished, or after a bound: the queue
// commits what was enqueued either way.
func (h *durableHook) wait() {
	done := make(chan struct{})
	go func() { h.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.b.log.Warn("some acknowledgements were still pending at shutdown")
	}
}

func newMessage(pk packets.Packet, mask uint64, early bool) *storage.Message {
	m := &storage.Message{
		Topic:      pk.TopicName,
		Payload:    pk.Payload, // mochi allocates each packet afresh
		QoS:        pk.FixedHeader.Qos,
		Retain:     pk.FixedHeader.Retain,
		Bridges:    mask,
		AckedEarly: early,
	}
	for _, p := range pk.Properties.User {
		m.Props = append(m.Props, storage.Property{Key: p.Key, Value: p.Val})
	}
	return m
}
