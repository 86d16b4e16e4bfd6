package broker

import (
	"context"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket on a listener of ours. mochi's
// listeners.Websocket binds its own socket, out of reach of limitListener,
// and the upgrade clears the deadline set at accept: a socket that upgraded
// and then said nothing stayed open for ever.
type wsListener struct {
	id             string
	proto          string       // ws | wss
	ln             net.Listener // limited, and TLS for wss
	connectTimeout time.Duration
	srv            *http.Server
	log            *slog.Logger
	establish      listeners.EstablishFn
}

// acceptedAt is the request context key of the time its connection was
// accepted.
type acceptedAt struct{}

func newWSListener(id, proto string, ln net.Listener, connectTimeout time.Duration) *wsListener {
	return &wsListener{id: id, proto: proto, ln: ln, connectTimeout: connectTimeout}
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return l.proto }

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	up := &websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		CheckOrigin:      func(*http.Request) bool { return true }, // as mochi's: sensors send no Origin worth checking
		HandshakeTimeout: l.connectTimeout,
	}
	l.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l.serve(up, w, r) }),
		// The HTTP server replaces the connection's deadline with its
		// own while it reads a request: give it the same bound.
		ReadHeaderTimeout: l.connectTimeout,
		ReadTimeout:       l.connectTimeout,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, acceptedAt{}, time.Now())
		},
		ErrorLog: stdlog.New(httpErrors{log}, "", 0),
	}
	// One upgrade per connection: an idle HTTP connection would otherwise
	// hold its place under the cap.
	l.srv.SetKeepAlivesEnabled(false)
	return nil
}

// httpErrors logs the HTTP server's errors (a failed TLS handshake, a bad
// request) under one message, which the log's rate limit can hold back;
// each line names the remote address.
type httpErrors struct{ log *slog.Logger }

func (w httpErrors) Write(p []byte) (int, error) {
	w.log.Warn("websocket connection failed", "error", strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *wsListener) serve(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	defer c.Close()
	// The upgrade cleared the deadlines: what is left of the connect
	// timeout applies to the CONNECT, and mochi replaces it with the
	// keepalive's once the CONNECT is read.
	accepted, _ := r.Context().Value(acceptedAt{}).(time.Time)
	c.UnderlyingConn().SetDeadline(accepted.Add(l.connectTimeout))
	if err := l.establish(l.id, &wsConn{Conn: c.UnderlyingConn(), c: c}); err != nil {
		l.log.Warn("", "error", err) // as mochi's listeners log it
	}
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("serving websocket listener", "error", err)
	}
}

// Close stops accepting (also when Serve never ran) and closes the clients.
// Upgraded connections are not the HTTP server's any more: closeClients
// ends them.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.srv.Close()
	l.ln.Close()
	closeClients(l.id)
}

// wsConn carries MQTT in binary WebSocket messages, as mochi's does: a
// packet may span messages and a message may hold several packets.
// Deadlines, addresses and Close go to the underlying connection.
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader // the message being read, if any
}

var errTextMessage = errors.New("websocket: text message; MQTT needs binary")

func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			op, r, err := w.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextMessage
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r, err = nil, nil
			if n == 0 {
				continue
			}
		}
		return n, err
	}
}

func (w *wsConn) Write(p []byte) (int, error) {
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
