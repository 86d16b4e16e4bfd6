package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/broker/brokertest"
	"github.com/outpost-edge/outpost/storage"
)

type env struct {
	b     *Broker
	q     *storage.Queue
	cloud *storage.Bridge
	addr  string
}

// start runs a broker on a loopback port whose only route sends
// "sensors/..." to the bridge "cloud".
func start(t *testing.T, qo storage.Options, edit func(*Options)) *env {
	t.Helper()
	qo.Bridges = []string{"cloud"}
	q, err := storage.Open(filepath.Join(t.TempDir(), "queue.db"), qo)
	if err != nil {
		t.Fatal(err)
	}
	cloud, _ := q.Bridge("cloud")
	o := Options{
		Listeners: []Listener{{Name: "test", Type: "tcp", Address: "127.0.0.1:0"}},
		Queue:     q,
		Route: func(topic string) uint64 {
			if strings.HasPrefix(topic, "sensors/") {
				return cloud.Mask()
			}
			return 0
		},
	}
	if edit != nil {
		edit(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("closing queue: %v", err)
		}
	})
	return &env{b: b, q: q, cloud: cloud, addr: b.Addrs()[0].String()}
}

// pahoClient connects a paho client to addr: host:port for tcp, else a URL
// (ws://, tls://, wss://).
func pahoClient(t *testing.T, addr, id string, edit func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	o := paho.NewClientOptions().AddBroker(addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetWriteTimeout(5 * time.Second)
	if edit != nil {
		edit(o)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func queued(t *testing.T, e *env) []storage.Message {
	t.Helper()
	msgs, _, err := e.cloud.Read(0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestAckedMessageIsQueuedAndDelivered(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	got := make(chan paho.Message, 10)
	sub := pahoClient(t, e.addr, "sub", nil)
	if tok := sub.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := pahoClient(t, e.addr, "pub", nil)
	for qos := byte(0); qos <= 2; qos++ {
		tok := pub.Publish(fmt.Sprintf("sensors/s1/q%d", qos), qos, false, fmt.Sprintf("payload-%d", qos))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish qos %d: %v", qos, tok.Error())
		}
	}
	if tok := pub.Publish("local/only", 1, false, "not forwarded"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// The QoS 1 and 2 messages were acknowledged: they must be in the queue now.
	msgs := queued(t, e)
	var topics []string
	for _, m := range msgs {
		topics = append(topics, m.Topic+"="+string(m.Payload))
	}
	want := "sensors/s1/q0=payload-0,sensors/s1/q1=payload-1,sensors/s1/q2=payload-2"
	if strings.Join(topics, ",") != want {
		t.Fatalf("queue holds %v, want %s", topics, want)
	}
	// Every message, queued or not, reaches local subscribers exactly once.
	seen := map[string]int{}
	for len(seen) < 4 {
		select {
		case m := <-got:
			seen[m.Topic()]++
		case <-time.After(5 * time.Second):
			t.Fatalf("local subscriber got %v", seen)
		}
	}
	select {
	case m := <-got:
		t.Fatalf("duplicate local delivery of %s", m.Topic())
	case <-time.After(200 * time.Millisecond):
	}
	if s := e.b.Stats(); s.Received != 4 || s.ClientsConnected != 2 {
		t.Fatalf("stats = %+v, want 4 received, 2 clients", s)
	}
}

func TestPipelinedPublishesShareCommits(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	const n = 2000
	var wg sync.WaitGroup
	for c := range 4 {
		pub := pahoClient(t, e.addr, fmt.Sprint("pub", c), nil)
		wg.Go(func() {
			toks := make([]paho.Token, 0, n/4)
			for i := range n / 4 {
				toks = append(toks, pub.Publish(fmt.Sprintf("sensors/%d", c), 1, false, fmt.Sprint(i)))
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	msgs := queued(t, e)
	if len(msgs) != n {
		t.Fatalf("%d messages queued, want %d", len(msgs), n)
	}
	// Per client, the queue keeps publish order.
	next := map[string]int{}
	for _, m := range msgs {
		if string(m.Payload) != fmt.Sprint(next[m.Topic]) {
			t.Fatalf("%s: got payload %s, want %d", m.Topic, m.Payload, next[m.Topic])
		}
		next[m.Topic]++
	}
	st, _ := e.q.Stats()
	if st.Commits*4 > st.Appended {
		t.Fatalf("%d commits for %d messages: pipelined publishes must share commits", st.Commits, st.Appended)
	}
	t.Logf("%d messages, %d commits", st.Appended, st.Commits)
}

func TestRejectNewWhenFull(t *testing.T) {
	e := start(t, storage.Options{MaxBytes: 4096, WhenFull: storage.RejectNew}, nil)

	// MQTT 5: publish until the queue is full; the refusal is PUBACK 0x97.
	v5, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "v5", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v5.Close()
	var accepted int
	var refusal packets.Packet
	for id := uint16(1); id < 500; id++ {
		if err := v5.Publish(id, "sensors/v5", make([]byte, 100), 1); err != nil {
			t.Fatal(err)
		}
		ack, err := v5.Read(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ack.FixedHeader.Type != packets.Puback || ack.PacketID != id {
			t.Fatalf("got packet type %d id %d, want PUBACK %d", ack.FixedHeader.Type, ack.PacketID, id)
		}
		if ack.ReasonCode != 0 {
			refusal = ack
			break
		}
		accepted++
	}
	if refusal.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("full queue answered reason 0x%02x after %d messages, want 0x97", refusal.ReasonCode, accepted)
	}
	// QoS 2 gets a PUBREC with the same reason.
	v5.Publish(600, "sensors/v5", make([]byte, 100), 2)
	if ack, err := v5.Read(5 * time.Second); err != nil || ack.FixedHeader.Type != packets.Pubrec || ack.ReasonCode != 0x97 {
		t.Fatalf("QoS 2 into full queue: %+v %v, want PUBREC 0x97", ack.FixedHeader, err)
	}

	// Another client keeps working while the queue is full: local traffic flows.
	other := pahoClient(t, e.addr, "other", nil)
	local := make(chan string, 1)
	other.Subscribe("local/#", 1, func(_ paho.Client, m paho.Message) { local <- string(m.Payload()) }).Wait()

	// MQTT 3.1.1 has no negative ack: the client is disconnected, unacknowledged.
	v3, err := brokertest.Dial(e.addr, brokertest.Options{Version: 4, ClientID: "v3", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	v3.Publish(1, "sensors/v3", make([]byte, 100), 1)
	if pk, err := v3.Read(5 * time.Second); err == nil {
		t.Fatalf("3.1.1 client got packet type %d (reason 0x%02x), want a closed connection", pk.FixedHeader.Type, pk.ReasonCode)
	}

	if tok := other.Publish("local/x", 1, false, "still here"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("other client affected: %v", tok.Error())
	}
	select {
	case p := <-local:
		if p != "still here" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("other client's message not delivered")
	}
	if n := len(queued(t, e)); n != accepted {
		t.Fatalf("%d queued, %d acknowledged: every acknowledged message and no other must be queued", n, accepted)
	}
	if s := e.b.Stats(); s.Refused < 3 {
		t.Fatalf("refused = %d, want at least 3", s.Refused)
	}

	// A will on a routed topic, sent into the full queue: its sender is
	// gone and will not resend it, so it is a counted drop.
	before, err := e.q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	w, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "will", Clean: true,
		Will: brokertest.Will{Topic: "sensors/will", Payload: make([]byte, 100), QoS: 1}}) // as large as the refused messages
	if err != nil {
		t.Fatal(err)
	}
	w.Close() // no DISCONNECT: the will is sent
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := e.q.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Dropped[storage.ReasonQueueFull] == before.Dropped[storage.ReasonQueueFull]+1 && st.Rejected == before.Rejected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("will refused by the full queue: queue_full drops %d -> %d, rejected %d -> %d; want one more drop",
				before.Dropped[storage.ReasonQueueFull], st.Dropped[storage.ReasonQueueFull], before.Rejected, st.Rejected)
		}
	}
	if n := len(queued(t, e)); n != accepted {
		t.Fatalf("%d queued after the will, want %d", n, accepted)
	}
}

func TestQoS2ExactlyOnceLocally(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	c, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "q2", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Publish(7, "sensors/q2", []byte("once"), 2)
	rec, err := c.Read(5 * time.Second)
	if err != nil || rec.FixedHeader.Type != packets.Pubrec || rec.ReasonCode != 0 {
		t.Fatalf("want PUBREC 0, got %+v %v", rec, err)
	}
	c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 7})
	comp, err := c.Read(5 * time.Second)
	if err != nil || comp.FixedHeader.Type != packets.Pubcomp || comp.ReasonCode != 0 {
		t.Fatalf("want PUBCOMP 0, got %+v %v", comp, err)
	}
	if n := len(queued(t, e)); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
}

func TestRetainedThroughQueue(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	pub := pahoClient(t, e.addr, "pub", nil)
	if tok := pub.Publish("sensors/door", 1, true, "open"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	got := make(chan string, 1)
	sub := pahoClient(t, e.addr, "late", nil)
	sub.Subscribe("sensors/door", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }).Wait()
	select {
	case p := <-got:
		if p != "open" {
			t.Fatalf("retained = %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("retained message not delivered to a late subscriber")
	}
	if m := queued(t, e); len(m) != 1 || !m[0].Retain {
		t.Fatalf("queued %+v, want one retained message", m)
	}
}

func TestLocalPublish(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	got := make(chan string, 2)
	sub := pahoClient(t, e.addr, "sub", nil)
	sub.Subscribe("#", 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() }).Wait()
	if err := e.b.Publish(t.Context(), "sensors/gateway/enclosure", []byte(`{"t":21.5}`), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Publish(t.Context(), "status/local", []byte("x"), 0, false); err != nil {
		t.Fatal(err)
	}
	if m := queued(t, e); len(m) != 1 || m[0].Topic != "sensors/gateway/enclosure" {
		t.Fatalf("queued %+v", m)
	}
	for range 2 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("local publish not delivered")
		}
	}
}

func TestAckBeforeSync(t *testing.T) {
	e := start(t, storage.Options{CommitInterval: 20 * time.Millisecond}, func(o *Options) { o.AckBeforeSync = true })
	pub := pahoClient(t, e.addr, "pub", nil)
	for i := range 50 {
		if tok := pub.Publish("sensors/x", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// Acknowledged before the commit: the queue catches up within an interval.
	deadline := time.Now().Add(5 * time.Second)
	for len(queued(t, e)) != 50 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 queued", len(queued(t, e)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuthAndACL(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	e := start(t, storage.Options{}, func(o *Options) {
		o.Auth = &Auth{Users: []User{{Username: "sensor-01", PasswordHash: hash,
			Publish: []string{"sensors/sensor-01/#"}, Subscribe: []string{"commands/sensor-01/#"}}}}
	})
	if _, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "anon"}); err == nil {
		t.Fatal("anonymous client accepted with anonymous: false")
	}
	if _, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "bad", Username: "sensor-01", Password: "wrong"}); err == nil {
		t.Fatal("wrong password accepted")
	}
	for range 2 { // the second login is served from the cache
		c, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "ok", Username: "sensor-01", Password: "s3cret"})
		if err != nil {
			t.Fatalf("valid login refused: %v", err)
		}
		c.Publish(1, "sensors/sensor-01/t", []byte("ok"), 1)
		if ack, _ := c.Read(5 * time.Second); ack.ReasonCode != 0 {
			t.Fatalf("allowed publish answered 0x%02x", ack.ReasonCode)
		}
		c.Publish(2, "sensors/sensor-02/t", []byte("no"), 1)
		if ack, _ := c.Read(5 * time.Second); ack.ReasonCode != packets.ErrNotAuthorized.Code {
			t.Fatalf("denied publish answered 0x%02x, want 0x87", ack.ReasonCode)
		}
		c.Close()
	}
	if n := len(queued(t, e)); n != 2 {
		t.Fatalf("%d queued, want the 2 allowed", n)
	}
	if s := e.b.Stats(); s.DroppedACL != 2 {
		t.Fatalf("DroppedACL = %d, want 2", s.DroppedACL)
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		allowed, want string
		ok            bool
	}{
		{"a/#", "a/#", true}, {"a/#", "a", true}, {"a/#", "a/b/c", true}, {"a/#", "a/+", true},
		{"a/+", "a/b", true}, {"a/+", "a/+", true}, {"a/+", "a/#", false}, {"a/+", "a/b/c", false},
		{"a/b", "a/+", false}, {"a/b", "a/b", true}, {"#", "x/#", true}, {"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b", false}, {"a", "a/b", false},
	} {
		if got := covers(tc.allowed, tc.want); got != tc.ok {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.allowed, tc.want, got, tc.ok)
		}
	}
}

func TestCloseIsIdempotentAndRefusesAfter(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Publish(t.Context(), "sensors/x", nil, 1, false); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
}

func TestAddressInUse(t *testing.T) {
	e := start(t, storage.Options{}, nil)
	_, err := New(Options{Listeners: []Listener{{Name: "dup", Type: "tcp", Address: e.addr}}, Queue: e.q})
	if err == nil || !strings.Contains(err.Error(), "dup") {
		t.Fatalf("New on a used address = %v, want an error naming the listener", err)
	}
}

// TestListenerTypes: one broker with a tcp, a tls, a ws and a wss
// listener. A QoS 1 publish over each is acknowledged, queued and delivered
// to a subscriber on another listener.
func TestListenerTypes(t *testing.T) {
	ca := bridgetest.NewCA(t)
	serverTLS := ca.ServerTLS(t, false)
	e := start(t, storage.Options{}, func(o *Options) {
		o.Listeners = []Listener{
			{Name: "tcp", Type: "tcp", Address: "127.0.0.1:0"},
			{Name: "tls", Type: "tls", Address: "127.0.0.1:0", TLS: serverTLS},
			{Name: "ws", Type: "ws", Address: "127.0.0.1:0"},
			{Name: "wss", Type: "wss", Address: "127.0.0.1:0", TLS: serverTLS},
		}
	})
	addrs := e.b.Addrs()
	if len(addrs) != 4 {
		t.Fatalf("Addrs() = %v, want 4", addrs)
	}
	clientTLS := &tls.Config{RootCAs: ca.Pool()}
	got := make(chan string, 8)
	sub := pahoClient(t, "wss://"+addrs[3].String(), "sub", func(o *paho.ClientOptions) { o.SetTLSConfig(clientTLS) })
	if tok := sub.Subscribe("sensors/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	var want []string
	for i, scheme := range []string{"tcp", "tls", "ws", "wss"} {
		c := pahoClient(t, scheme+"://"+addrs[i].String(), "pub-"+scheme, func(o *paho.ClientOptions) { o.SetTLSConfig(clientTLS) })
		topic := "sensors/" + scheme
		if tok := c.Publish(topic, 1, false, scheme); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("QoS 1 publish over %s: %v", scheme, tok.Error())
		}
		want = append(want, topic+"="+scheme)
	}
	// Acknowledged, so queued.
	var have []string
	for _, m := range queued(t, e) {
		have = append(have, m.Topic+"="+string(m.Payload))
	}
	if !slices.Equal(have, want) {
		t.Fatalf("queue holds %q, want %q", have, want)
	}
	seen := map[string]bool{}
	for len(seen) < 4 {
		select {
		case topic := <-got:
			seen[topic] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("the wss subscriber got %v", seen)
		}
	}
	if s := e.b.Stats(); s.ClientsConnected != 5 {
		t.Fatalf("%d clients connected, want 5", s.ClientsConnected)
	}
}
