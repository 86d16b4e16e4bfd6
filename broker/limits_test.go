package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
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

// wsListeners is a ws and a wss listener on loopback ports, and a client
// TLS configuration that trusts the wss one.
func wsListeners(t *testing.T) ([]Listener, *tls.Config) {
	ca := bridgetest.NewCA(t)
	return []Listener{
		{Name: "ws", Type: "ws", Address: "127.0.0.1:0"},
		{Name: "wss", Type: "wss", Address: "127.0.0.1:0", TLS: ca.ServerTLS(t, false)},
	}, &tls.Config{RootCAs: ca.Pool()}
}

// TestWebsocketConnectTimeout: on ws and wss listeners, a connection that
// sends no HTTP request, or no TLS handshake, or upgrades and then sends no
// CONNECT, is closed after the connect timeout, as on tcp; a client that
// sent its CONNECT keeps its connection past it.
func TestWebsocketConnectTimeout(t *testing.T) {
	ls, clientTLS := wsListeners(t)
	logs := &bridgetest.Buffer{}
	e := start(t, storage.Options{}, func(o *Options) {
		o.Listeners = ls
		o.ConnectTimeout = 300 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	addrs := e.b.Addrs()
	for i, scheme := range []string{"ws", "wss"} {
		addr := addrs[i].String()
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		start := time.Now()
		if !closedWithin(raw, 5*time.Second) {
			t.Errorf("%s: a connection that sent nothing was open after 5s", scheme)
		}
		t.Logf("%s: silent socket closed after %v", scheme, time.Since(start).Round(time.Millisecond))
		if scheme == "wss" {
			// The HTTP server's errors go to our log, under one message.
			want := `error="http: TLS handshake error from ` + raw.LocalAddr().String() + ":"
			if !slices.ContainsFunc(strings.Split(logs.String(), "\n"), func(l string) bool {
				return strings.Contains(l, `msg="websocket connection failed"`) && strings.Contains(l, want)
			}) {
				t.Errorf("no websocket connection failed %s in the log:\n%s", want, logs)
			}
		}

		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: clientTLS, HandshakeTimeout: 5 * time.Second}
		ws, _, err := d.Dial(scheme+"://"+addr+"/mqtt", nil)
		if err != nil {
			t.Fatalf("%s upgrade: %v", scheme, err)
		}
		defer ws.Close()
		start = time.Now()
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err = ws.ReadMessage()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: a client that upgraded and sent no CONNECT was connected after 5s", scheme)
		}
		t.Logf("%s: upgraded silent client closed after %v (%v)", scheme, time.Since(start).Round(time.Millisecond), err)

		// A real client outlives the connect timeout: its keepalive rules.
		c := pahoClient(t, scheme+"://"+addr, "sensor-"+scheme, func(o *paho.ClientOptions) { o.SetTLSConfig(clientTLS) })
		time.Sleep(3 * 300 * time.Millisecond)
		if tok := c.Publish("sensors/"+scheme, 1, false, "v"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s client after the connect timeout: %v", scheme, tok.Error())
		}
	}
	if m := queued(t, e); len(m) != 2 || m[0].Topic != "sensors/ws" || m[1].Topic != "sensors/wss" {
		t.Fatalf("queued %+v, want sensors/ws and sensors/wss", m)
	}
}

// TestWebsocketOpenConnectionCap: ws and wss listeners close a connection
// beyond MaxClients+64 open ones at accept, as tcp listeners do, and take
// clients again once some have gone.
func TestWebsocketOpenConnectionCap(t *testing.T) {
	ls, clientTLS := wsListeners(t)
	e := start(t, storage.Options{}, func(o *Options) {
		o.Listeners = ls
		o.MaxClients = 1
	})
	const max = 1 + 64
	for i, scheme := range []string{"ws", "wss"} {
		addr := e.b.Addrs()[i].String()
		var held []net.Conn
		for range max {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			held = append(held, c)
		}
		// Accepted in order: this one is past the cap. The others wait for
		// the 10s connect timeout.
		over, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer over.Close()
		if !closedWithin(over, 2*time.Second) {
			t.Fatalf("%s: connection %d was not closed at accept", scheme, max+1)
		}
		if closedWithin(held[0], 100*time.Millisecond) {
			t.Fatalf("%s: a connection under the cap was closed", scheme)
		}
		for _, c := range held[:2] {
			c.Close()
		}
		// The server sees those closes when it next reads them.
		var c paho.Client
		waitFor(t, func() bool {
			o := paho.NewClientOptions().AddBroker(scheme + "://" + addr).SetClientID("after-" + scheme).SetTLSConfig(clientTLS).
				SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(2 * time.Second)
			c = paho.NewClient(o)
			tok := c.Connect()
			return tok.WaitTimeout(5*time.Second) && tok.Error() == nil
		})
		if tok := c.Publish("sensors/"+scheme, 1, false, "v"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s client under the cap again: %v", scheme, tok.Error())
		}
		c.Disconnect(0)
	}
}

// TestMaxInflight: with MaxInflight = n and the queue's commit held back
// (a commit interval: after one commit, the next waits for it), a client
// pipelining QoS 1 publishes has n of them queued, and one more read and
// waiting, before the broker stops reading from it; the held commit stores
// exactly those. Another client is read and answered meanwhile. The MQTT 5
// CONNACK announces receive maximum n.
func TestMaxInflight(t *testing.T) {
	const n = 4
	const hold = 2 * time.Second
	e := start(t, storage.Options{CommitInterval: hold}, func(o *Options) { o.MaxInflight = n })
	c, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "pipeliner", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rm := c.Connack.Properties.ReceiveMaximum; rm != n {
		t.Fatalf("CONNACK receive maximum %d, want %d", rm, n)
	}
	// The first commit is at once; it starts the interval that holds the
	// next one back.
	c.Publish(1, "sensors/warmup", []byte("w"), 1)
	if ack, err := c.Read(5 * time.Second); err != nil || ack.FixedHeader.Type != packets.Puback {
		t.Fatalf("warm-up publish: %v", err)
	}
	st0, _ := e.q.Stats()
	received0 := e.b.Stats().Received
	read := func() uint64 { return e.b.Stats().Received - received0 }

	const total = 2 * n
	for i := range total {
		if err := c.Publish(uint16(i+2), fmt.Sprintf("sensors/p/%d", i), []byte("v"), 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return read() >= n+1 })
	time.Sleep(300 * time.Millisecond)
	if got := read(); got != n+1 {
		t.Fatalf("the broker read %d of %d pipelined publishes while their commit was held, want %d (MaxInflight + 1 waiting)", got, total, n+1)
	}

	// Another client is read and answered while the first one waits.
	o, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "other", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.Publish(1, "local/x", []byte("v"), 1)
	if ack, err := o.Read(time.Second); err != nil || ack.FixedHeader.Type != packets.Puback || ack.PacketID != 1 {
		t.Fatalf("other client's local publish not acknowledged while the first waits: %v", err)
	}
	o.Publish(2, "sensors/other", []byte("v"), 1)
	waitFor(t, func() bool { return read() == n+3 })

	if st, _ := e.q.Stats(); st.Commits != st0.Commits {
		t.Fatal("the commit was not held back while the test looked: nothing was proven")
	}
	// The held commit stores what was enqueued: n of the first client's
	// and one of the other's.
	var st storage.Stats
	waitFor(t, func() bool { st, _ = e.q.Stats(); return st.Commits > st0.Commits })
	if got := st.Appended - st0.Appended; got != n+1 {
		t.Fatalf("the held commit stored %d messages, want %d", got, n+1)
	}
	if ack, err := o.Read(5 * time.Second); err != nil || ack.FixedHeader.Type != packets.Puback || ack.PacketID != 2 {
		t.Fatalf("other client's queued publish: %v", err)
	}
	// Then the first client's publishes are all acknowledged, in order.
	for i := range total {
		ack, err := c.Read(2 * hold)
		if err != nil || ack.FixedHeader.Type != packets.Puback || ack.PacketID != uint16(i+2) || ack.ReasonCode != 0 {
			t.Fatalf("ack %d: type %d id %d reason 0x%02x %v", i, ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, err)
		}
	}
	if got := len(queued(t, e)); got != total+2 {
		t.Fatalf("%d queued, want %d", got, total+2)
	}
}
