package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/storage"
)

// Listener is one address the broker accepts clients on.
type Listener struct {
	Name    string
	Type    string // tcp | tls | ws | wss
	Address string
	TLS     *tls.Config // required for tls and wss
}

// Options configure a Broker.
type Options struct {
	Listeners []Listener
	// Queue receives every message that Route marks for a bridge.
	Queue *storage.Queue
	// Route returns the bridges (bit i = bridge i) whose forward routes
	// match a topic; 0 means the message is only delivered locally.
	Route func(topic string) uint64
	// AckBeforeSync acknowledges a queued message when it is handed to the
	// committer instead of after its commit (queue.sync: interval).
	AckBeforeSync bool
	// Auth decides who may connect, publish and subscribe; nil allows all.
	Auth *Auth
	// MaxInflight is how many QoS 1/2 messages of one client may wait for
	// their commit before the broker stops reading from that client; it is
	// also the receive maximum announced to MQTT 5 clients. Default 1024.
	MaxInflight int
	// MaxPacketSize bounds an inbound packet; a client that sends a larger
	// one is disconnected. Default 1 MiB.
	MaxPacketSize int
	// MaxClients bounds the connected clients; one more is refused in its
	// CONNACK (server unavailable / server busy). Default 1024.
	MaxClients int
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT before it is closed. Default 10s.
	ConnectTimeout time.Duration
	// MaxKeepalive caps a client's keepalive, and is imposed on clients
	// that ask for none (0), so that a silent connection cannot hold its
	// resources for ever; MQTT 5 clients are told in the CONNACK. Default 5m.
	MaxKeepalive time.Duration
	Logger       *slog.Logger
}

// Stats are the broker's counters.
type Stats struct {
	Received         uint64 // messages published by clients and local publishers
	ClientsConnected int64
	DroppedACL       uint64 // publishes refused by an ACL
	Refused          uint64 // QoS 1/2 messages refused because the queue could not take them
}

// Broker is a running MQTT broker.
type Broker struct {
	srv    *mqtt.Server
	opts   Options
	log    *slog.Logger
	hook   *durableHook
	replay *mqtt.Client // inline client that delivers committed messages locally
	auth   *authHook
	route  atomic.Pointer[func(topic string) uint64]

	mu    sync.Mutex
	addrs []net.Addr

	closed atomic.Bool
	done   chan struct{}
}

// New creates a broker and binds its listeners, so that an address in use is
// reported before anything runs.
func New(opts Options) (*Broker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Route == nil {
		opts.Route = func(string) uint64 { return 0 }
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = 1024
	}
	if opts.MaxPacketSize <= 0 {
		opts.MaxPacketSize = 1 << 20
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 1024
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.MaxKeepalive <= 0 {
		opts.MaxKeepalive = 5 * time.Minute
	}
	if len(opts.Listeners) == 0 {
		return nil, errors.New("broker: no listeners")
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(opts.MaxPacketSize)
	caps.ReceiveMaximum = uint16(min(opts.MaxInflight, 65535))
	caps.MaximumClients = int64(opts.MaxClients)
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       opts.Logger.With("component", "mqtt"),
		Capabilities: caps,
	})
	b := &Broker{srv: srv, opts: opts, log: opts.Logger, done: make(chan struct{})}
	b.route.Store(&opts.Route)
	b.replay = srv.NewClient(nil, "local", "outpost-local", true)
	b.hook = &durableHook{b: b}
	if err := srv.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("adding durable hook: %w", err)
	}
	auth := opts.Auth
	if auth == nil {
		auth = &Auth{Anonymous: true}
	}
	b.auth = &authHook{b: b}
	b.auth.set(auth)
	if err := srv.AddHook(b.auth, nil); err != nil {
		return nil, fmt.Errorf("adding auth hook: %w", err)
	}
	if err := srv.AddHook(&limitHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("adding limit hook: %w", err)
	}
	for _, l := range opts.Listeners {
		if err := b.listen(l); err != nil {
			srv.Listeners.CloseAll(func(string) {})
			return nil, err
		}
	}
	return b, nil
}

func (b *Broker) listen(l Listener) error {
	switch l.Type {
	case "", "tcp", "ws":
	case "tls", "wss":
		if l.TLS == nil {
			return fmt.Errorf("listener %s: %s needs a certificate", l.Name, l.Type)
		}
	default:
		return fmt.Errorf("listener %s: unknown type %q", l.Name, l.Type)
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	b.addr(ln.Addr())
	// Bound the open connections (a flood of sockets that never send
	// CONNECT is not counted by mochi's client limit) and the time to the
	// CONNECT, on every listener type: websocket ones are served from this
	// listener too, rather than from a socket mochi binds itself.
	ln = &limitListener{Listener: ln, max: int64(b.opts.MaxClients) + 64, connectTimeout: b.opts.ConnectTimeout, log: b.log}
	if l.Type == "tls" || l.Type == "wss" {
		ln = tls.NewListener(ln, l.TLS)
	}
	var ml listeners.Listener = listeners.NewNet(l.Name, ln)
	if l.Type == "ws" || l.Type == "wss" {
		ml = newWSListener(l.Name, l.Type, ln, b.opts.ConnectTimeout)
	}
	if err := b.srv.AddListener(ml); err != nil {
		ln.Close()
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	return nil
}

func (b *Broker) addr(a net.Addr) {
	b.mu.Lock()
	b.addrs = append(b.addrs, a)
	b.mu.Unlock()
}

// Addrs returns the listeners' bound addresses, in configuration order.
func (b *Broker) Addrs() []net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]net.Addr(nil), b.addrs...)
}

// Run serves clients until ctx is done, then closes the broker.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("starting broker: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	return b.Close()
}

// Close stops the listeners, disconnects the clients and waits until every
// message handed to the queue has been acknowledged or refused. The queue
// itself is closed by its owner, after the broker. Close is idempotent.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(b.done)
	// mochi v2.7.9's Close can deadlock when a client disconnects during it
	// (Clients.GetByListener re-takes a read lock a waiting writer blocks;
	// mochi-mqtt/server#488). Bound it, so that SIGTERM still ends outpost
	// and closes the queue cleanly.
	closed := make(chan struct{})
	go func() { b.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		b.log.Error("mqtt server did not stop within 10s; going on with shutdown")
	}
	b.hook.wait()
	return nil
}

// Publish publishes a message from the gateway itself (a wired sensor, a
// bridge's receive route). A message that a bridge route matches is in the
// queue, durably, before Publish delivers it and returns.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if b.closed.Load() {
		return storage.ErrClosed
	}
	b.hook.received.Add(1)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    uint16(qos), // ignored for inline clients, but must be valid
		Created:     time.Now().Unix(),
	}
	if mask := b.routeOf(topic); mask != 0 {
		t, err := b.opts.Queue.Enqueue(ctx, newMessage(pk, mask, b.opts.AckBeforeSync))
		if err != nil {
			return err
		}
		if !b.opts.AckBeforeSync {
			if _, err := t.Wait(ctx); err != nil {
				return err
			}
		}
	}
	return b.srv.InjectPacket(b.replay, pk)
}

// SetAuth replaces who may connect and what they may publish and subscribe
// to (a reload). Connected clients keep their session; their next publish
// and subscribe are checked against the new rules. nil allows all.
func (b *Broker) SetAuth(a *Auth) {
	if a == nil {
		a = &Auth{Anonymous: true}
	}
	b.auth.set(a)
}

// SetRoute replaces the function that says which bridges a topic goes to
// (a reload of the bridges' forward routes).
func (b *Broker) SetRoute(route func(topic string) uint64) {
	if route == nil {
		route = func(string) uint64 { return 0 }
	}
	b.route.Store(&route)
}

func (b *Broker) routeOf(topic string) uint64 { return (*b.route.Load())(topic) }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Received:         b.hook.received.Load(),
		ClientsConnected: atomic.LoadInt64(&b.srv.Info.ClientsConnected),
		DroppedACL:       b.hook.droppedACL.Load(),
		Refused:          b.hook.refused.Load(),
	}
}
