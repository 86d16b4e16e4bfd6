package broker

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// limitListener closes connections beyond max at once, and gives each new
// connection connectTimeout to send its CONNECT (mochi then sets the
// keepalive deadline, replacing this one).
type limitListener struct {
	net.Listener
	max            int64
	connectTimeout time.Duration
	log            *slog.Logger
	open           atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.log.Warn("connection refused: too many open connections", "remote", c.RemoteAddr(), "max", l.max)
			c.Close()
			continue
		}
		c.SetDeadline(time.Now().Add(l.connectTimeout))
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// limitHook caps keepalive: a client that asks for none, or for more than
// MaxKeepalive, gets MaxKeepalive (MQTT 5 clients are told in the CONNACK),
// so that mochi's 1.5 × keepalive read deadline always applies.
type limitHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *limitHook) ID() string { return "outpost-limits" }

func (h *limitHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *limitHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	max := uint16(min(h.b.opts.MaxKeepalive/time.Second, 65535))
	if cl.State.Keepalive == 0 || cl.State.Keepalive > max {
		cl.State.Keepalive = max
		cl.State.ServerKeepalive = true
	}
	return nil
}
