package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/broker/brokertest"
)

// chaosSensor publishes numbered messages at a steady rate to the local
// broker, reconnecting whenever it loses the broker, and tells the auditor
// about every acknowledgement. A message that is not acknowledged is not
// sent again: the next one has the next counter.
type chaosSensor struct {
	id     uint32
	qos    byte
	v5     bool // raw MQTT 5 client; else paho (3.1.1)
	addr   string
	every  time.Duration
	window int // unacknowledged messages at most
	pad    string
	a      *auditor
	n      uint32
}

func (s *chaosSensor) next() (msgID, []byte) {
	s.n++
	id := msgID{s.id, s.n}
	return id, fmt.Appendf(nil, `{"s":%d,"n":%d,"p":"%s"}`, s.id, s.n, s.pad)
}

func (s *chaosSensor) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if s.v5 {
			s.sessionV5(stop)
		} else {
			s.sessionPaho(stop)
		}
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sessionPaho is one MQTT 3.1.1 connection: paho reports a QoS 1 message
// acknowledged at PUBACK, a QoS 2 one at PUBCOMP (later than PUBREC, when
// it is already durable: stricter).
func (s *chaosSensor) sessionPaho(stop <-chan struct{}) {
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + s.addr).SetClientID(fmt.Sprintf("chaos-s%d", s.id)).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(2 * time.Second).
		SetWriteTimeout(2 * time.Second).SetKeepAlive(5 * time.Second).SetPingTimeout(2 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		cl.Disconnect(0)
		return
	}
	inflight := make(chan struct{}, s.window)
	var wg sync.WaitGroup
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for cl.IsConnectionOpen() {
		select {
		case <-stop:
			wg.Wait()
			cl.Disconnect(100)
			return
		case <-tick.C:
		}
		select {
		case inflight <- struct{}{}:
		default:
			continue // window full: skip a beat, keep the rate steady
		}
		id, payload := s.next()
		tok := cl.Publish(sensorTopic(s.id), s.qos, false, payload)
		s.a.published()
		wg.Go(func() {
			defer func() { <-inflight }()
			if tok.WaitTimeout(15*time.Second) && tok.Error() == nil {
				s.a.ack(id)
			}
		})
	}
	wg.Wait()
	cl.Disconnect(0)
}

// sessionV5 is one MQTT 5 connection with the raw client: acknowledged at
// PUBACK or PUBREC with a reason code below 0x80 (0x97 is a refusal: the
// queue is full).
func (s *chaosSensor) sessionV5(stop <-chan struct{}) {
	c, err := brokertest.Dial(s.addr, brokertest.Options{Version: 5, ClientID: fmt.Sprintf("chaos-s%d", s.id), Clean: true, Keepalive: -1})
	if err != nil {
		return
	}
	var wmu sync.Mutex // brokertest.Client is not safe for concurrent writes
	var pmu sync.Mutex
	pending := map[uint16]msgID{}
	free := make(chan uint16, s.window)
	for i := 1; i <= s.window; i++ {
		free <- uint16(i)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			pk, err := c.Read(time.Hour)
			if err != nil {
				return
			}
			switch pk.FixedHeader.Type {
			case packets.Puback, packets.Pubrec:
				pmu.Lock()
				id, ok := pending[pk.PacketID]
				delete(pending, pk.PacketID)
				pmu.Unlock()
				if !ok {
					continue
				}
				if pk.ReasonCode >= 0x80 {
					s.a.nack()
					free <- pk.PacketID
					continue
				}
				s.a.ack(id)
				if pk.FixedHeader.Type == packets.Puback {
					free <- pk.PacketID
					continue
				}
				wmu.Lock()
				err := c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pk.PacketID})
				wmu.Unlock()
				if err != nil {
					return
				}
			case packets.Pubcomp:
				free <- pk.PacketID
			case packets.Disconnect:
				return
			}
		}
	}()
	defer func() {
		c.Close()
		<-readerDone
	}()
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			// Give the last acknowledgements a moment.
			deadline := time.Now().Add(5 * time.Second)
			for len(free) < s.window && time.Now().Before(deadline) {
				select {
				case <-readerDone:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			return
		case <-readerDone:
			return
		case <-tick.C:
		}
		var pid uint16
		select {
		case pid = <-free:
		default:
			continue
		}
		id, payload := s.next()
		pmu.Lock()
		pending[pid] = id
		pmu.Unlock()
		wmu.Lock()
		err := c.Publish(pid, sensorTopic(s.id), payload, s.qos)
		wmu.Unlock()
		s.a.published()
		if err != nil {
			return
		}
	}
}

func newSensors(a *auditor, addr string, perSecond int) []*chaosSensor {
	pad := strings.Repeat("x", 300)
	var ss []*chaosSensor
	for i, k := range []struct {
		qos byte
		v5  bool
	}{{1, false}, {2, false}, {1, false}, {1, true}, {2, true}, {1, true}} {
		ss = append(ss, &chaosSensor{id: uint32(i), qos: k.qos, v5: k.v5, addr: addr, every: time.Second / time.Duration(perSecond),
			window: 32, pad: pad, a: a})
	}
	return ss
}
