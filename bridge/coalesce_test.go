package bridge

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestCoalescerKeepsBytesInOrder: many small writes arrive whole and in
// order, and Close sends what was still buffered.
func TestCoalescerKeepsBytesInOrder(t *testing.T) {
	c, s := tcpPair(t)
	w := newCoalescer(c)
	var want bytes.Buffer
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(s); got <- b }()
	for i := range 20000 {
		p := bytes.Repeat([]byte{byte(i)}, 1+i%97)
		want.Write(p)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	w.Write([]byte("DISCONNECT"))
	want.WriteString("DISCONNECT")
	w.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d, or out of order", len(b), want.Len())
	}
}

// TestCoalescerReportsLoss: once the peer is gone, a send fails, the
// connection is closed (so that a reader sees the loss) and writes fail.
func TestCoalescerReportsLoss(t *testing.T) {
	c, s := tcpPair(t)
	w := newCoalescer(c)
	s.(*net.TCPConn).SetLinger(0)
	s.Close() // a reset
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := w.Write(make([]byte, 1024)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a reset connection kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection is still readable after a failed send")
	}
}

// readCounter counts the reads made on a connection.
type readCounter struct {
	net.Conn
	n int
}

func (c *readCounter) Read(p []byte) (int, error) { c.n++; return c.Conn.Read(p) }

// TestCoalescerBuffersReads: packets read a few bytes at a time, as paho
// reads PUBACKs, come whole and in order from a few reads of the socket.
func TestCoalescerBuffersReads(t *testing.T) {
	c, s := tcpPair(t)
	rc := &readCounter{Conn: c}
	w := newCoalescer(rc)
	defer w.Close()
	const packets = 1000
	var sent bytes.Buffer
	for i := range packets {
		sent.Write([]byte{0x40, 2, byte(i >> 8), byte(i)}) // PUBACK, packet id i
	}
	go s.Write(sent.Bytes())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range packets {
		var h [2]byte
		if _, err := io.ReadFull(w, h[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(w, h[1:]); err != nil {
			t.Fatal(err)
		}
		id := make([]byte, h[1])
		if _, err := io.ReadFull(w, id); err != nil {
			t.Fatal(err)
		}
		if h != [2]byte{0x40, 2} || int(id[0])<<8|int(id[1]) != i {
			t.Fatalf("packet %d read as %x %x", i, h, id)
		}
	}
	// 3,000 reads by the packet reader; the socket is read once per
	// arrival, a handful of times for 4,000 bytes sent at once.
	if rc.n > packets/10 {
		t.Fatalf("%d reads of the socket for %d packets read a byte at a time", rc.n, packets)
	}
	t.Logf("%d packets, %d reads of the socket", packets, rc.n)
}
