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
