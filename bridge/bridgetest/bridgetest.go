// Package bridgetest has the test peers bridge tests share: an in-process
// upstream MQTT broker that records what it receives, and a TCP proxy that
// cuts the link the ways a mobile uplink fails.
package bridgetest

import (
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/bridge/route"
)

// Upstream is an in-process mochi broker standing in for the cloud broker;
// it records every message published under a filter, in arrival order.
type Upstream struct {
	Srv  *mqtt.Server // the broker, for publishing downstream
	Addr string       // where it listens
	once sync.Once
	mu   sync.Mutex
	got  []packets.Packet
}

func NewUpstream(t testing.TB, filter string) *Upstream {
	return StartUpstream(t, UpstreamOptions{Filter: filter})
}

// NewUpstreamOn is NewUpstream on a given address.
func NewUpstreamOn(t testing.TB, addr, filter string) *Upstream {
	return StartUpstream(t, UpstreamOptions{Filter: filter, Addr: addr})
}

// NewUpstreamAuth is NewUpstream accepting only the given user and password.
func NewUpstreamAuth(t testing.TB, filter, user, password string) *Upstream {
	rules := &auth.Ledger{Auth: auth.AuthRules{{Username: auth.RString(user), Password: auth.RString(password), Allow: true}},
		ACL: auth.ACLRules{{Username: auth.RString(user), Filters: auth.Filters{"#": auth.ReadWrite}}}}
	return StartUpstream(t, UpstreamOptions{Filter: filter, Hook: new(auth.Hook), HookOptions: &auth.Options{Ledger: rules}})
}

// UpstreamOptions configure StartUpstream.
type UpstreamOptions struct {
	Filter      string      // what Received records
	Addr        string      // default 127.0.0.1:0
	Hook        mqtt.Hook   // default: allow everything
	HookOptions any         // for Hook
	TLS         *tls.Config // serve TLS (with ClientAuth set: mutual TLS)
	WebSocket   bool        // serve MQTT over WebSocket (ws://, or wss:// with TLS)
}

// StartUpstream starts an upstream broker.
func StartUpstream(t testing.TB, o UpstreamOptions) *Upstream {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Hook == nil {
		o.Hook = new(auth.AllowHook)
	}
	// mochi logs every refused packet in full: keep only its errors.
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err := srv.AddHook(o.Hook, o.HookOptions); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{Srv: srv, Addr: ln.Addr().String()}
	var l listeners.Listener = listeners.NewNet("up", ln)
	switch {
	case o.WebSocket:
		// mochi binds websocket listeners itself: free the port for it.
		ln.Close()
		l = listeners.NewWebsocket(listeners.Config{ID: "up", Address: u.Addr, TLSConfig: o.TLS})
	case o.TLS != nil:
		l = listeners.NewNet("up", tls.NewListener(ln, o.TLS))
	}
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Subscribe(o.Filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		u.mu.Lock()
		u.got = append(u.got, pk)
		u.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// Close stops the broker, as an upstream restart or crash does. mochi's
// Close panics when called twice; this one is idempotent.
func (u *Upstream) Close() { u.once.Do(func() { u.Srv.Close() }) }

// Received returns what arrived so far, in order.
func (u *Upstream) Received() []packets.Packet {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]packets.Packet(nil), u.got...)
}

// WaitFor waits until n messages have arrived, failing the test after d.
func (u *Upstream) WaitFor(t testing.TB, n int, d time.Duration) []packets.Packet {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := u.Received()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream received %d of %d messages", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Proxy is a TCP proxy in front of the upstream that can cut the link the
// two ways an LTE uplink fails: blackhole (bytes vanish, connections stay
// open) and down (connections reset, new ones refused).
type Proxy struct {
	ln     net.Listener
	target string
	// Blackhole, while true, drops every byte in both directions.
	Blackhole atomic.Bool
	down      atomic.Bool
	mu        sync.Mutex
	conns     map[net.Conn]bool
}

func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.Reset() })
	return p
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

// pipe copies src to dst; while blackholed, what it reads is dropped.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.Blackhole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// SetDown resets every connection and refuses new ones until setDown(false).
func (p *Proxy) SetDown(down bool) {
	p.down.Store(down)
	if down {
		p.Reset()
	}
}

// Reset closes every connection with a TCP reset.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, as a dropped mobile link looks to the peer
		}
		c.Close()
		delete(p.conns, c)
	}
}

// Buffer is a bytes buffer safe for concurrent writes: a log sink that
// tests read while the code under test writes.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DenyPublish is an upstream hook that lets every client in and refuses
// publishes to topics matching Filter, as a cloud broker's ACL does. mochi
// answers a refused QoS 1 publish from an MQTT 3.1.1 client by closing the
// connection; an MQTT 5 client gets PUBACK 0x87.
type DenyPublish struct {
	mqtt.HookBase
	Filter string
}

func (h *DenyPublish) ID() string { return "deny-publish" }

func (h *DenyPublish) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *DenyPublish) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *DenyPublish) OnACLCheck(_ *mqtt.Client, topic string, write bool) bool {
	return !write || !route.Match(h.Filter, topic)
}
