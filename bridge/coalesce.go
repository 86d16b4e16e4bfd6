package bridge

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// coalescer is a connection whose writes are gathered and sent by one
// goroutine in large writes. paho writes each packet with its own write
// call; draining a backlog of small messages that way spends most of its
// time in system calls. Write copies into a buffer (at most coalesceMax
// bytes wait; a writer beyond that blocks until they are sent) and returns;
// a failed send closes the connection, so that paho's reader sees the loss
// at once, and fails every later Write.
//
// Reads are buffered too: paho reads each packet's fixed header a byte at
// a time, three system calls for every PUBACK of a drain.
type coalescer struct {
	net.Conn
	r       *bufio.Reader // only paho's reader goroutine reads
	mu      sync.Mutex
	sent    sync.Cond // signalled when a send has finished
	buf     []byte
	err     error
	kick    chan struct{}
	closing chan struct{}
	stopped chan struct{} // the sender has returned
	once    sync.Once
}

const coalesceMax = 64 << 10

func newCoalescer(c net.Conn) *coalescer {
	w := &coalescer{Conn: c, r: bufio.NewReader(c), kick: make(chan struct{}, 1), closing: make(chan struct{}), stopped: make(chan struct{})}
	w.sent.L = &w.mu
	go w.sender()
	return w
}

func (w *coalescer) Read(p []byte) (int, error) { return w.r.Read(p) }

func (w *coalescer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for w.err == nil && len(w.buf) > 0 && len(w.buf)+len(p) > coalesceMax {
		w.sent.Wait()
	}
	if w.err != nil {
		w.mu.Unlock()
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a send is due already; it takes everything buffered
	}
	return len(p), nil
}

func (w *coalescer) sender() {
	defer close(w.stopped)
	var out []byte
	for {
		select {
		case <-w.kick:
		case <-w.closing:
			return
		}
		w.mu.Lock()
		out, w.buf = w.buf, out[:0]
		w.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		_, err := w.Conn.Write(out)
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
			w.Conn.Close()
		}
		w.sent.Broadcast()
		w.mu.Unlock()
	}
}

// Close sends what is buffered (a DISCONNECT, typically), best effort
// within a second, and closes the connection.
func (w *coalescer) Close() error {
	w.once.Do(func() {
		close(w.closing)
		select {
		case <-w.stopped:
		case <-time.After(time.Second):
			// A send is stuck on a dead link: give up on the rest.
			w.Conn.Close()
			<-w.stopped
		}
		w.mu.Lock()
		rest := w.buf
		if w.err == nil && len(rest) > 0 {
			w.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			w.Conn.Write(rest)
		}
		if w.err == nil {
			w.err = net.ErrClosed
		}
		w.sent.Broadcast()
		w.mu.Unlock()
	})
	return w.Conn.Close()
}
