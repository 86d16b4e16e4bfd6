package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/broker/brokertest"
	"github.com/outpost-edge/outpost/storage"
)

// closedWithin reports whether the server closes c within d (reading
// whatever it sends until then).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// publishSteadily publishes n QoS 1 messages on sensors/steady/<i>, waiting
// for each PUBACK, and returns how many were acknowledged.
func publishSteadily(t *testing.T, addr string, n int) int {
	c, err := brokertest.Dial(addr, brokertest.Options{ClientID: "steady"})
	if err != nil {
		t.Error(err)
		return 0
	}
	defer c.Close()
	acked := 0
	for i := range n {
		if err := c.Publish(uint16(i%60000+1), fmt.Sprintf("sensors/steady/%d", i), []byte("v"), 1); err != nil {
			t.Error(err)
			return acked
		}
		if ack, err := c.Read(10 * time.Second); err != nil || ack.FixedHeader.Type != packets.Puback {
			t.Errorf("message %d: %v %v", i, ack.FixedHeader.Type, err)
			return acked
		}
		acked++
	}
	return acked
}

// TestBadClientsCostOnlyThemselves: a client sending garbage, one sending a
// packet over the size limit, and one that connects and says nothing are
// disconnected; a well-behaved sensor publishing all along loses nothing.
func TestBadClientsCostOnlyThemselves(t *testing.T) {
	e := start(t, storage.Options{}, func(o *Options) {
		o.MaxPacketSize = 4 << 10
		o.ConnectTimeout = 300 * time.Millisecond
	})
	const n = 2000
	var wg sync.WaitGroup
	var acked int
	wg.Go(func() { acked = publishSteadily(t, e.addr, n) })

	// Garbage: not even a CONNECT.
	g, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13}, 100))
	if !closedWithin(g, 5*time.Second) {
		t.Error("a client sending garbage was not disconnected")
	}

	// A malformed packet after a good CONNECT: a PUBLISH whose remaining
	// length claims more than the topic length field allows.
	m, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "malformed"})
	if err != nil {
		t.Fatal(err)
	}
	m.Conn.Write([]byte{0x32, 0x03, 0xff, 0xff, 0x00})
	if !closedWithin(m.Conn, 5*time.Second) {
		t.Error("a client sending a malformed PUBLISH was not disconnected")
	}

	// Over the packet size limit.
	big, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "big"})
	if err != nil {
		t.Fatal(err)
	}
	big.Publish(1, "sensors/big", make([]byte, 8<<10), 1)
	if !closedWithin(big.Conn, 5*time.Second) {
		t.Error("a client sending a packet over max packet size was not disconnected")
	}

	// Silent: connects and never sends CONNECT.
	s, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !closedWithin(s, 5*time.Second) {
		t.Error("a connection that never sent CONNECT was not closed")
	}

	wg.Wait()
	if acked != n {
		t.Fatalf("the well-behaved sensor got %d of %d acks", acked, n)
	}
	steady := 0
	for _, m := range queued(t, e) {
		if strings.HasPrefix(m.Topic, "sensors/steady/") {
			steady++
		}
		if m.Topic == "sensors/big" {
			t.Fatal("the oversized message was queued")
		}
	}
	if steady != n {
		t.Fatalf("%d of the sensor's %d acknowledged messages queued", steady, n)
	}
}

// TestSlowSubscriber: a subscriber that stops reading does not hold back
// publishers: every message is acknowledged and queued.
func TestSlowSubscriber(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	slow, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "#", Qos: 1}}})
	if ack, err := slow.Read(5 * time.Second); err != nil || ack.FixedHeader.Type != packets.Suback {
		t.Fatalf("subscribing: %v", err)
	}
	// From here on the slow client reads nothing.
	c, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "fast"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3000
	payload := bytes.Repeat([]byte("x"), 1024)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := c.Read(30 * time.Second); err != nil {
				done <- fmt.Errorf("ack %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		if err := c.Publish(uint16(i%60000+1), fmt.Sprintf("sensors/s/%d", i), payload, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("publisher stalled behind a subscriber that does not read: %v", err)
	}
	if got := len(queued(t, e)); got != n {
		t.Fatalf("%d of %d queued", got, n)
	}
}

// TestKeepaliveEnforced: a client asking for no keepalive gets the
// broker's maximum (told in the MQTT 5 CONNACK) and is disconnected after
// 1.5 times that of silence.
func TestKeepaliveEnforced(t *testing.T) {
	e := start(t, storage.Options{}, func(o *Options) { o.MaxKeepalive = time.Second })
	for _, v := range []byte{4, 5} {
		c, err := brokertest.Dial(e.addr, brokertest.Options{Version: v, ClientID: fmt.Sprint("silent", v), Keepalive: -1})
		if err != nil {
			t.Fatal(err)
		}
		if v == 5 && (!c.Connack.Properties.ServerKeepAliveFlag || c.Connack.Properties.ServerKeepAlive != 1) {
			t.Errorf("MQTT 5 CONNACK does not name the imposed keepalive: %+v", c.Connack.Properties)
		}
		if !closedWithin(c.Conn, 10*time.Second) {
			t.Fatalf("MQTT %d client with keepalive 0 kept its connection through 10s of silence", v)
		}
		c.Close()
	}
}

// TestMaxClients: beyond MaxClients a CONNECT is refused in the CONNACK;
// the clients already connected are unaffected.
func TestMaxClients(t *testing.T) {
	e := start(t, storage.Options{}, func(o *Options) { o.MaxClients = 2 })
	var cs []*brokertest.Client
	for i := range 2 {
		c, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	_, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "third"})
	if err == nil || !strings.Contains(err.Error(), "0x03") {
		t.Fatalf("third client: %v, want refused with 0x03 (server unavailable)", err)
	}
	_, err = brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "third5"})
	if err == nil || !strings.Contains(err.Error(), "0x89") {
		t.Fatalf("third MQTT 5 client: %v, want refused with 0x89 (server busy)", err)
	}
	cs[0].Publish(1, "sensors/a", []byte("still here"), 1)
	if ack, err := cs[0].Read(5 * time.Second); err != nil || ack.FixedHeader.Type != packets.Puback {
		t.Fatalf("a connected client after refusals: %v", err)
	}
}
