package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/broker/brokertest"
	"github.com/outpost-edge/outpost/storage"
)

func testAuth(t *testing.T) *Auth {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return &Auth{Users: []User{
		{Username: "sensor-01", PasswordHash: hash, Publish: []string{"sensors/sensor-01/#"}, Subscribe: []string{"commands/sensor-01/#"}},
		{Username: "ops", PasswordHash: hash, Publish: []string{"commands/+/#"}, Subscribe: []string{"sensors/#", "commands/#"}},
	}}
}

// TestACLTable checks publish and subscribe grants through real MQTT 3.1.1
// clients (paho) and MQTT 5 (raw, for the reason codes).
func TestACLTable(t *testing.T) {
	e := start(t, storage.Options{}, func(o *Options) { o.Auth = testAuth(t) })
	subs := []struct {
		user, filter string
		ok           bool
	}{
		{"sensor-01", "commands/sensor-01/#", true},
		{"sensor-01", "commands/sensor-01/valve", true}, // narrower than the grant
		{"sensor-01", "commands/#", false},              // wider
		{"sensor-01", "commands/sensor-02/#", false},
		{"ops", "sensors/+/t", true},
		{"ops", "#", false},
	}
	for i, tc := range subs {
		// MQTT 3.1.1: a refused filter gets 0x80 in the SUBACK.
		c := pahoClient(t, e.addr, fmt.Sprint("v3-", i), func(o *paho.ClientOptions) { o.SetUsername(tc.user).SetPassword("s3cret") })
		tok := c.Subscribe(tc.filter, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("%s subscribing %s: no SUBACK", tc.user, tc.filter)
		}
		code := tok.(*paho.SubscribeToken).Result()[tc.filter]
		if (code == 0x80) == tc.ok {
			t.Errorf("MQTT 3.1.1 %s subscribing %s: SUBACK 0x%02x, want allowed=%v", tc.user, tc.filter, code, tc.ok)
		}
		// MQTT 5: 0x87 (not authorized).
		r, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: fmt.Sprint("v5-", i), Username: tc.user, Password: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		r.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1, ProtocolVersion: 5,
			Filters: packets.Subscriptions{{Filter: tc.filter, Qos: 1}}})
		ack, err := r.Read(5 * time.Second)
		if err != nil || len(ack.ReasonCodes) != 1 {
			t.Fatalf("MQTT 5 SUBACK: %v %+v", err, ack)
		}
		if want := byte(1); !tc.ok {
			if ack.ReasonCodes[0] != packets.ErrNotAuthorized.Code {
				t.Errorf("MQTT 5 %s subscribing %s: 0x%02x, want 0x87", tc.user, tc.filter, ack.ReasonCodes[0])
			}
		} else if ack.ReasonCodes[0] != want {
			t.Errorf("MQTT 5 %s subscribing %s: 0x%02x, want granted QoS 1", tc.user, tc.filter, ack.ReasonCodes[0])
		}
		r.Close()
	}

	// Publishing: allowed ones are queued and delivered; a denied one is
	// dropped and counted, and the 3.1.1 client (no negative ack) is
	// disconnected.
	ops := pahoClient(t, e.addr, "ops", func(o *paho.ClientOptions) { o.SetUsername("ops").SetPassword("s3cret") })
	got := make(chan string, 10)
	ops.Subscribe("sensors/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }).Wait()
	lost := make(chan error, 1)
	s := pahoClient(t, e.addr, "sensor", func(o *paho.ClientOptions) {
		o.SetUsername("sensor-01").SetPassword("s3cret").SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	if tok := s.Publish("sensors/sensor-01/t", 1, false, "21.5"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("allowed publish: %v", tok.Error())
	}
	select {
	case topic := <-got:
		if topic != "sensors/sensor-01/t" {
			t.Fatalf("delivered %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("allowed message not delivered to the subscriber")
	}
	s.Publish("sensors/sensor-02/t", 1, false, "forged")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("MQTT 3.1.1 client publishing a denied topic at QoS 1 was not disconnected")
	}
	select {
	case topic := <-got:
		t.Fatalf("denied message delivered on %s", topic)
	case <-time.After(200 * time.Millisecond):
	}
	if st := e.b.Stats(); st.DroppedACL != 1 {
		t.Fatalf("DroppedACL = %d, want 1", st.DroppedACL)
	}
	if n := len(queued(t, e)); n != 1 {
		t.Fatalf("%d queued, want the allowed one", n)
	}
}

// TestSetAuth: new rules apply to the next login and the next publish of a
// connected client; nothing queued is touched.
func TestSetAuth(t *testing.T) {
	a := testAuth(t)
	e := start(t, storage.Options{}, func(o *Options) { o.Auth = a })
	c, err := brokertest.Dial(e.addr, brokertest.Options{Version: 5, ClientID: "s", Username: "sensor-01", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	publish := func(id uint16, topic string) byte {
		c.Publish(id, topic, []byte("v"), 1)
		ack, err := c.Read(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ack.ReasonCode
	}
	if code := publish(1, "sensors/sensor-01/t"); code != 0 {
		t.Fatalf("before reload: 0x%02x", code)
	}
	if code := publish(2, "sensors/shared/t"); code != packets.ErrNotAuthorized.Code {
		t.Fatalf("before reload, sensors/shared: 0x%02x", code)
	}
	b := *a
	b.Users = append([]User(nil), a.Users...)
	b.Users[0].Publish = []string{"sensors/shared/#"}
	b.Users = b.Users[:1] // ops removed
	e.b.SetAuth(&b)
	if code := publish(3, "sensors/shared/t"); code != 0 {
		t.Fatalf("after reload, the newly granted topic: 0x%02x", code)
	}
	if code := publish(4, "sensors/sensor-01/t"); code != packets.ErrNotAuthorized.Code {
		t.Fatalf("after reload, the revoked topic: 0x%02x", code)
	}
	if _, err := brokertest.Dial(e.addr, brokertest.Options{ClientID: "o", Username: "ops", Password: "s3cret"}); err == nil {
		t.Fatal("a user removed by the reload could still log in")
	}
	if n := len(queued(t, e)); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}
}

// TestMosquittoClientsOverMutualTLS: mosquitto_pub and mosquitto_sub with a
// client certificate from a CA the listener trusts; without one the
// handshake fails.
func TestMosquittoClientsOverMutualTLS(t *testing.T) {
	pub, err1 := exec.LookPath("mosquitto_pub")
	sub, err2 := exec.LookPath("mosquitto_sub")
	if err1 != nil || err2 != nil {
		t.Skip("mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)")
	}
	ca := bridgetest.NewCA(t)
	server := ca.ServerTLS(t, true)
	cert, key := ca.Issue(t, "sensor-01")
	e := start(t, storage.Options{}, func(o *Options) {
		o.Listeners = []Listener{{Name: "tls", Type: "tls", Address: "127.0.0.1:0", TLS: server}}
		o.Auth = testAuth(t)
	})
	_, port, _ := strings.Cut(e.addr, ":")
	tlsArgs := []string{"-h", "127.0.0.1", "-p", port, "--cafile", ca.CertFile, "--cert", cert, "--key", key}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subCmd := exec.CommandContext(ctx, sub, append(tlsArgs, "-u", "ops", "-P", "s3cret", "-t", "sensors/#", "-C", "3", "-v", "-q", "1", "-V", "mqttv5")...)
	var subOut strings.Builder
	subCmd.Stdout, subCmd.Stderr = &subOut, &subOut
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.b.Stats().ClientsConnected == 1 })
	for i := range 3 {
		out, err := exec.CommandContext(ctx, pub, append(tlsArgs, "-u", "sensor-01", "-P", "s3cret", "-t", "sensors/sensor-01/t", "-m", strconv.Itoa(i), "-q", "1")...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub over mutual TLS: %v\n%s", err, out)
		}
	}
	if err := subCmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, subOut.String())
	}
	if want := "sensors/sensor-01/t 0\nsensors/sensor-01/t 1\nsensors/sensor-01/t 2\n"; subOut.String() != want {
		t.Fatalf("mosquitto_sub got %q, want %q", subOut.String(), want)
	}
	if n := len(queued(t, e)); n != 3 {
		t.Fatalf("%d queued, want 3", n)
	}
	// No client certificate: refused in the handshake.
	out, err := exec.CommandContext(ctx, pub, "-h", "127.0.0.1", "-p", port, "--cafile", ca.CertFile,
		"-u", "sensor-01", "-P", "s3cret", "-t", "sensors/sensor-01/t", "-m", "x", "-q", "1").CombinedOutput()
	if err == nil {
		t.Fatalf("mosquitto_pub without a client certificate succeeded:\n%s", out)
	}
	if n := len(queued(t, e)); n != 3 {
		t.Fatalf("%d queued after the refused client, want 3", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWillNeedsPublishGrant: a will is a publish the client makes by going
// away, and mochi sends it without an ACL check. A will on a topic the user
// may not publish to (or on no valid topic name) is refused at CONNECT with
// 0x87 (MQTT 5) or 0x05 (3.1.1), one CONNACK and a closed connection, and
// is neither delivered nor retained; an allowed will, on a topic a bridge
// forwards, is still delivered and retained when the connection drops.
func TestWillNeedsPublishGrant(t *testing.T) {
	a := testAuth(t)
	a.Users = append(a.Users, User{Username: "attacker", PasswordHash: a.Users[0].PasswordHash, Publish: []string{"sensors/attacker/#"}})
	logs := &bridgetest.Buffer{}
	e := start(t, storage.Options{}, func(o *Options) {
		o.Auth = a
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	got := make(chan string, 10)
	ops := pahoClient(t, e.addr, "ops", func(o *paho.ClientOptions) { o.SetUsername("ops").SetPassword("s3cret") })
	for _, f := range []string{"commands/#", "sensors/#"} {
		tok := ops.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + "=" + string(m.Payload()) })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribing %s: %v", f, tok.Error())
		}
	}

	// MQTT 3.1.1 through paho.
	o := paho.NewClientOptions().AddBroker("tcp://"+e.addr).SetClientID("attacker-paho").SetProtocolVersion(4).
		SetUsername("attacker").SetPassword("s3cret").SetWill("commands/valve", "open", 1, true).
		SetAutoReconnect(false).SetConnectRetry(false)
	tok := paho.NewClient(o).Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("paho: no answer to a CONNECT with a denied will")
	}
	if code := tok.(*paho.ConnectToken).ReturnCode(); tok.Error() == nil || code != packets.Err3NotAuthorized.Code {
		t.Fatalf("paho with a will on commands/valve: return code 0x%02x (%v), want 0x05 not authorized", code, tok.Error())
	}

	// Raw clients, to see every byte of the answer.
	for _, tc := range []struct {
		version byte
		topic   string
		code    byte
	}{
		{4, "commands/valve", packets.Err3NotAuthorized.Code},
		{5, "commands/valve", packets.ErrNotAuthorized.Code},
		{5, "sensors/attacker/+", packets.ErrNotAuthorized.Code}, // within the grant, but not a topic name
	} {
		conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := brokertest.New(conn, tc.version)
		c.Write(brokertest.ConnectPacket(brokertest.Options{Version: tc.version, ClientID: "attacker", Clean: true,
			Username: "attacker", Password: "s3cret",
			Will: brokertest.Will{Topic: tc.topic, Payload: []byte("open"), QoS: 1, Retain: true}}))
		ack, err := c.Read(5 * time.Second)
		if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != tc.code {
			t.Fatalf("MQTT %d will on %s: got packet type %d reason 0x%02x (%v), want CONNACK 0x%02x",
				tc.version, tc.topic, ack.FixedHeader.Type, ack.ReasonCode, err, tc.code)
		}
		if pk, err := c.Read(5 * time.Second); err == nil {
			t.Fatalf("MQTT %d will on %s: packet type %d (reason 0x%02x) after the refusal", tc.version, tc.topic, pk.FixedHeader.Type, pk.ReasonCode)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("MQTT %d will on %s: connection left open after the refusal", tc.version, tc.topic)
		}
		c.Close()
	}
	if !strings.Contains(logs.String(), `msg="login refused: will topic not allowed" user=attacker topic=commands/valve remote=127.0.0.1:`) {
		t.Errorf("no log line for the refused will:\n%s", logs)
	}

	// Allowed wills, each sent when its connection drops without DISCONNECT.
	for _, v := range []byte{4, 5} {
		c, err := brokertest.Dial(e.addr, brokertest.Options{Version: v, ClientID: fmt.Sprint("sensor-", v), Clean: true,
			Username: "attacker", Password: "s3cret",
			Will: brokertest.Will{Topic: "sensors/attacker/status", Payload: fmt.Appendf(nil, "offline-%d", v), QoS: 1, Retain: true}})
		if err != nil {
			t.Fatalf("MQTT %d client with an allowed will: %v", v, err)
		}
		c.Close()
		select {
		case m := <-got:
			if want := fmt.Sprintf("sensors/attacker/status=offline-%d", v); m != want {
				t.Fatalf("delivered %s, want %s", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("MQTT %d client's allowed will was not delivered", v)
		}
	}

	// Nothing on commands/: neither delivered nor retained.
	select {
	case m := <-got:
		t.Fatalf("delivered %s", m)
	case <-time.After(200 * time.Millisecond):
	}
	late := make(chan string, 10)
	lc := pahoClient(t, e.addr, "late", func(o *paho.ClientOptions) { o.SetUsername("ops").SetPassword("s3cret") })
	for _, f := range []string{"commands/#", "sensors/#"} {
		lc.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { late <- m.Topic() + "=" + string(m.Payload()) }).WaitTimeout(5 * time.Second)
	}
	var retained []string
	for deadline := time.After(500 * time.Millisecond); ; {
		select {
		case m := <-late:
			retained = append(retained, m)
			continue
		case <-deadline:
		}
		break
	}
	if want := []string{"sensors/attacker/status=offline-5"}; !slices.Equal(retained, want) {
		t.Fatalf("retained %q, want %q", retained, want)
	}

	// The allowed wills are on a routed topic: queued for the bridge, as
	// any message the sensors sent; the refused ones are not.
	var queued []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		msgs, err := e.q.Peek(10)
		if err != nil {
			t.Fatal(err)
		}
		queued = queued[:0]
		for _, m := range msgs {
			queued = append(queued, fmt.Sprintf("%s=%s qos=%d retain=%v", m.Topic, m.Payload, m.QoS, m.Retain))
		}
		if len(queued) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	// In either order: mochi delivers a will to subscribers before it
	// calls the hook that queues it, so the second client's will may be
	// queued first. Wills of different clients have no order to keep.
	slices.Sort(queued)
	if want := []string{"sensors/attacker/status=offline-4 qos=1 retain=true", "sensors/attacker/status=offline-5 qos=1 retain=true"}; !slices.Equal(queued, want) {
		t.Fatalf("queued %q, want %q", queued, want)
	}
}

// TestRefusedLoginLogged: a refused login is logged with the address it
// came from (the log handler in cmd/outpost rate-limits repeats).
func TestRefusedLoginLogged(t *testing.T) {
	logs := &bridgetest.Buffer{}
	e := start(t, storage.Options{}, func(o *Options) {
		o.Auth = testAuth(t)
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	for _, tc := range []struct {
		user, password, msg string
	}{
		{"sensor-01", "wrong", `msg="login refused: wrong password" user=sensor-01`},
		{"nobody", "s3cret", `msg="login refused: unknown user" user=nobody`},
		{"", "", `msg="login refused: anonymous clients are not allowed"`},
	} {
		conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.msg + " remote=" + conn.LocalAddr().String() + "\n"
		_, err = brokertest.Connect(conn, brokertest.Options{ClientID: "c", Username: tc.user, Password: tc.password})
		if err == nil || !strings.Contains(err.Error(), "0x05") {
			t.Fatalf("login as %q/%q: %v, want refused with 0x05", tc.user, tc.password, err)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line %q in:\n%s", want, logs)
		}
	}
}
