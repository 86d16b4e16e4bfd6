package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/net/proxy"

	"github.com/outpost-edge/outpost/bridge/route"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// Publisher publishes into the local broker (receive routes).
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Options configure a bridge.
type Options struct {
	Config    configs.Bridge
	GatewayID string
	Queue     *storage.Bridge
	Local     Publisher // for receive routes; may be nil when there are none
	Logger    *slog.Logger
	Clock     Clock // nil: the real clock
}

// An MQTT 3.1.1 broker refuses a publish it will not accept (an ACL denying
// the topic) by closing the connection. A message the upstream closed the
// connection on refuseAfter times in a row, each time within probeWait of
// being sent alone, is dropped as DropRefused (see forwarder.refuseAfter).
const (
	refuseAfter = 3
	probeWait   = 10 * time.Second
)

// MQTT is a bridge to an upstream MQTT broker.
type MQTT struct {
	opts Options
	cfg  *configs.MQTTBridge
	log  *slog.Logger
	fw   *forwarder
	c    counters

	topics mappings[string] // see upstreamTopic
}

// NewMQTT returns the bridge for an mqtt bridge section.
func NewMQTT(o Options) (*MQTT, error) {
	if o.Config.MQTT == nil {
		return nil, errors.New("bridge: not an mqtt bridge")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	b := &MQTT{opts: o, cfg: o.Config.MQTT, log: o.Logger.With("bridge", o.Config.Name)}
	b.fw = &forwarder{
		qb:          o.Queue,
		maxMessages: max(o.Config.Batch.MaxMessages, 1),
		maxBytes:    max(int(o.Config.Batch.MaxBytes), 1),
		maxDelay:    o.Config.Batch.MaxDelay,
		pace:        &pacer{rate: o.Config.MaxRate},
		c:           &b.c,
		log:         b.log,
		refuseAfter: refuseAfter,
		probeWait:   probeWait,
	}
	return b, nil
}

// Name is the bridge's name.
func (b *MQTT) Name() string { return b.opts.Config.Name }

// Stats returns the bridge's counters.
func (b *MQTT) Stats() Stats {
	return b.c.stats(b.Name(), b.opts.Queue.Pending())
}

// Run connects, forwards and reconnects until ctx is done.
func (b *MQTT) Run(ctx context.Context) error {
	reconnect(ctx, &b.opts, &b.c, b.log, func(ctx context.Context) (bool, bool, error) {
		connected, err := b.session(ctx)
		return connected, false, err
	})
	return nil
}

// session is one connection: connect, subscribe the receive routes, and
// forward until the connection is lost. connected says whether it got as
// far as a CONNACK.
func (b *MQTT) session(ctx context.Context) (connected bool, err error) {
	l := &mqttLink{b: b, lostCh: make(chan struct{}), out: make(chan *publish, 2*b.fw.maxMessages)}
	o, err := b.clientOptions(l)
	if err != nil {
		return false, err
	}
	c := paho.NewClient(o)
	l.c = c
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return false, fmt.Errorf("connecting to %s: %w", b.cfg.URL, err)
	}
	defer func() {
		// A deliberate stop (shutdown, reload) sends no last will: say
		// offline ourselves, while the link still works.
		if b.cfg.StatusTopic != "" && ctx.Err() != nil {
			c.Publish(b.cfg.StatusTopic, 1, true, "offline").WaitTimeout(time.Second)
		}
		c.Disconnect(250)
	}()
	go l.publisher()
	if b.cfg.StatusTopic != "" {
		c.Publish(b.cfg.StatusTopic, 1, true, "online")
	}
	for _, r := range b.opts.Config.Receive {
		st := c.Subscribe(r.From, byte(r.QoS), func(_ paho.Client, m paho.Message) { b.receive(ctx, r, m) })
		if !st.WaitTimeout(b.cfg.ConnectTimeout) || st.Error() != nil {
			return true, fmt.Errorf("subscribing to %s: %v", r.From, st.Error())
		}
	}
	b.c.up.Store(true)
	b.log.Info("upstream connected", "url", b.cfg.URL, "pending", b.opts.Queue.Pending())
	err = b.fw.run(ctx, l)
	if errors.Is(err, errLinkLost) && l.err != nil {
		err = fmt.Errorf("%w: %v", err, l.err)
	}
	return true, err
}

func (b *MQTT) clientOptions(l *mqttLink) (*paho.ClientOptions, error) {
	o := paho.NewClientOptions().
		AddBroker(b.cfg.URL).
		SetClientID(b.cfg.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false). // our loop owns reconnects
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetStore(noStore{}).
		SetKeepAlive(0).
		SetConnectTimeout(b.cfg.ConnectTimeout).
		SetWriteTimeout(max(b.cfg.Keepalive, 5*time.Second)).
		SetConnectionLostHandler(func(_ paho.Client, err error) { l.setLost(err) })
	if ka := b.cfg.Keepalive; ka > 0 {
		// keepalive is how soon a silent link must be noticed: paho pings
		// after half of it without traffic (whole seconds) and gives the
		// PINGRESP a quarter, so that with paho's check ticks a dead link
		// is declared down within about one keepalive.
		o.SetKeepAlive(max((ka / 2).Truncate(time.Second), time.Second)).
			SetPingTimeout(max(ka/4, 500*time.Millisecond))
	}
	switch strings.SplitN(b.cfg.URL, "://", 2)[0] {
	case "tcp", "tls", "ssl":
		o.SetCustomOpenConnectionFn(dial)
	}
	if b.cfg.Username != "" {
		o.SetUsername(b.cfg.Username)
	}
	if b.cfg.PasswordFile != "" {
		// Read at every connect, so a rotated password is picked up.
		pw, err := os.ReadFile(b.cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("reading password_file: %w", err)
		}
		o.SetPassword(strings.TrimRight(string(pw), "\r\n"))
	}
	if b.cfg.TLS != nil || strings.HasPrefix(b.cfg.URL, "tls://") || strings.HasPrefix(b.cfg.URL, "ssl://") || strings.HasPrefix(b.cfg.URL, "wss://") {
		tc, err := clientTLS(b.cfg.TLS)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	if b.cfg.StatusTopic != "" {
		o.SetWill(b.cfg.StatusTopic, "offline", 1, true)
	}
	return o, nil
}

func clientTLS(c *configs.ClientTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c == nil {
		return tc, nil
	}
	tc.ServerName, tc.InsecureSkipVerify = c.ServerName, c.InsecureSkipVerify
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// receive publishes a message from the upstream into the local broker.
func (b *MQTT) receive(ctx context.Context, r configs.Route, m paho.Message) {
	topic := r.ToTemplate.Expand(m.Topic(), b.opts.GatewayID)
	if err := route.ValidTopic(topic); err != nil {
		b.log.Warn("received message maps to an invalid local topic; dropped", "from", m.Topic(), "to", topic, "error", err)
		return
	}
	if b.opts.Local == nil {
		return
	}
	if err := b.opts.Local.Publish(ctx, topic, m.Payload(), min(m.Qos(), byte(r.QoS)), m.Retained()); err != nil {
		b.log.Warn("publishing received message locally", "topic", topic, "error", err)
	}
}

// mqttLink is one paho connection.
type mqttLink struct {
	b      *MQTT
	c      paho.Client
	lostCh chan struct{}
	once   sync.Once
	err    error
	out    chan *publish // to the publisher goroutine
}

// publish is one message on its way upstream: the delivery the forwarder
// waits on. tok is set, and ready closed, once paho has taken it.
type publish struct {
	topic   string
	qos     byte
	retain  bool
	payload []byte
	ready   chan struct{}
	tok     paho.Token
}

func (p *publish) Done() <-chan struct{} {
	select {
	case <-p.ready:
		return p.tok.Done()
	default:
		return p.ready // the forwarder looks again once it is closed
	}
}

func (p *publish) Error() error {
	select {
	case <-p.ready:
		return p.tok.Error()
	default:
		return nil
	}
}

// publisher hands messages to paho, in order, on its own goroutine: paho's
// Publish can block for the whole write timeout when the connection drops
// under it, and the forwarder must see the loss at once.
func (l *mqttLink) publisher() {
	for {
		select {
		case p := <-l.out:
			p.tok = l.c.Publish(p.topic, p.qos, p.retain, p.payload)
			close(p.ready)
		case <-l.lostCh:
			return
		}
	}
}

func (l *mqttLink) setLost(err error) {
	l.once.Do(func() { l.err = err; close(l.lostCh) })
}

func (l *mqttLink) lost() <-chan struct{} { return l.lostCh }

// closedByPeer: paho reports the upstream closing the connection as the
// io.EOF of its packet reader; a reset, a write error and a missing PINGRESP
// look different.
func (l *mqttLink) closedByPeer() bool {
	return errors.Is(l.err, io.EOF) || errors.Is(l.err, io.ErrUnexpectedEOF)
}

func (l *mqttLink) send(m *storage.Message) (delivery, error) {
	b := l.b
	var r *configs.Route
	for i := range b.opts.Config.Forward {
		if route.Match(b.opts.Config.Forward[i].From, m.Topic) {
			r = &b.opts.Config.Forward[i]
			break
		}
	}
	if r == nil {
		// Queued under an earlier config whose routes this one no longer
		// has: nothing says where it goes.
		return nil, drop(DropNoRoute, errors.New("no forward route of the bridge matches the topic"))
	}
	p := &publish{topic: b.upstreamTopic(r, m.Topic), qos: min(byte(r.QoS), m.QoS),
		retain: m.Retain, payload: m.Payload, ready: make(chan struct{})}
	if b.cfg.Envelope == "json" {
		p.payload = envelope(b.opts.GatewayID, m)
	}
	select {
	case l.out <- p:
		return p, nil
	case <-l.lostCh:
		return nil, errLinkLost
	}
}

// dial opens a tcp:// or tls:// upstream connection as paho would (through
// a proxy named in ALL_PROXY, if any), with writes coalesced (coalescer).
func dial(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	conn, err := proxy.FromEnvironmentUsing(d).Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	if uri.Scheme == "tls" || uri.Scheme == "ssl" {
		tc := o.TLSConfig.Clone()
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tc.ServerName == "" {
			tc.ServerName = uri.Hostname()
		}
		tconn := tls.Client(conn, tc)
		if o.ConnectTimeout > 0 {
			conn.SetDeadline(time.Now().Add(o.ConnectTimeout))
		}
		if err := tconn.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn.SetDeadline(time.Time{})
		conn = tconn
	}
	return newCoalescer(conn), nil
}

// upstreamTopic maps a local topic through a route's template.
func (b *MQTT) upstreamTopic(r *configs.Route, topic string) string {
	if t, ok := b.topics.lookup(r, topic); ok {
		return t
	}
	t := r.ToTemplate.Expand(topic, b.opts.GatewayID)
	b.topics.add(r, topic, t)
	return t
}

// mappings keeps what routes make of local topics. A gateway's sensors
// publish on few topics, again and again: the mappings are kept (up to
// 4096, then forgotten together), so that draining a backlog does not build
// the same strings a million times. The forwarder's goroutine alone uses
// one. A route is known by its address: a reload's new routes start afresh.
type mappings[V any] struct{ m map[topicKey]V }

type topicKey struct {
	r     *configs.Route
	topic string
}

func (c *mappings[V]) lookup(r *configs.Route, topic string) (V, bool) {
	v, ok := c.m[topicKey{r, topic}]
	return v, ok
}

func (c *mappings[V]) add(r *configs.Route, topic string, v V) {
	if c.m == nil || len(c.m) >= 4096 {
		c.m = make(map[topicKey]V)
	}
	c.m[topicKey{r, topic}] = v
}

// noStore is a paho Store that keeps nothing. paho's store exists to resume
// a session after reconnecting; outpost starts every session clean and
// resends from its own queue, so storing each publish would only cost.
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}

// envelope wraps a message for consumers that must de-duplicate over MQTT
// 3.1.1, which has no properties to carry gateway_id and seq.
func envelope(gatewayID string, m *storage.Message) []byte {
	e := struct {
		GatewayID  string          `json:"gateway_id"`
		Seq        uint64          `json:"seq"`
		ReceivedAt string          `json:"received_at"`
		Topic      string          `json:"topic"`
		QoS        byte            `json:"qos"`
		Payload    json.RawMessage `json:"payload,omitempty"`
		PayloadB64 string          `json:"payload_b64,omitempty"`
	}{gatewayID, m.Seq, m.ReceivedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"), m.Topic, m.QoS, nil, ""}
	if json.Valid(m.Payload) {
		e.Payload = m.Payload
	} else {
		e.PayloadB64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	b, _ := json.Marshal(e)
	return b
}
