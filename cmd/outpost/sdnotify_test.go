package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a unixgram socket standing in for systemd's: it collects
// every datagram sent to it.
type notifySocket struct {
	conn *net.UnixConn
	msgs chan string
}

// listenNotify binds a datagram socket named name (a path, or '@' and an
// abstract name) and reads from it until the test ends.
func listenNotify(t *testing.T, name string) *notifySocket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{conn: c, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(s.msgs)
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

// shortDir returns a temporary directory with a short path: a unix socket
// path must fit in 108 bytes, which t.TempDir() under a long test name may
// not.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// waitFor returns the first datagram that has state as one of its lines, and
// every datagram read until then.
func (s *notifySocket) waitFor(t *testing.T, state string, within time.Duration) (string, []string) {
	t.Helper()
	var seen []string
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("notify socket closed waiting for %s; got %q", state, seen)
			}
			seen = append(seen, m)
			for _, l := range strings.Split(m, "\n") {
				if l == state {
					return m, seen
				}
			}
		case <-deadline:
			t.Fatalf("no %s within %v; got %q", state, within, seen)
		}
	}
}

func TestNotifyPathAndAbstractSockets(t *testing.T) {
	for _, name := range []string{
		filepath.Join(shortDir(t), "notify"),
		fmt.Sprintf("@outpost-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		s := listenNotify(t, name)
		t.Setenv("NOTIFY_SOCKET", name)
		n := newNotifier()
		if err := n.notify("READY=1", "STATUS=hello"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m, _ := s.waitFor(t, "READY=1", 5*time.Second); m != "READY=1\nSTATUS=hello" {
			t.Errorf("%s: got %q", name, m)
		}
	}
}

func TestNotifyWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if n := newNotifier(); n != nil {
		t.Fatalf("notifier without NOTIFY_SOCKET: %+v", n)
	}
	var n *notifier
	if err := n.notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	stop := systemdNotify(context.Background(), slog.New(slog.DiscardHandler), func() (string, error) {
		t.Error("probe called without NOTIFY_SOCKET")
		return "", nil
	})
	stop()
}

func TestNotifyWatchdogInterval(t *testing.T) {
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"garbage", "", 0},
		{"0", "", 0},
		{"30000000", "", 15 * time.Second},
		{"30000000", fmt.Sprint(os.Getpid()), 15 * time.Second},
		{"30000000", fmt.Sprint(os.Getpid() + 1), 0}, // the watchdog is some other process's
		{"30000000", "x", 0},
		{"200000", "", 100 * time.Millisecond},
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		if got := watchdogInterval(); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}

// An unhealthy process stops pinging the watchdog (so that systemd restarts
// it) and says why in STATUS=; it pings again once healthy.
func TestNotifyWatchdogOnlyWhileHealthy(t *testing.T) {
	name := filepath.Join(shortDir(t), "notify")
	s := listenNotify(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "40000") // a ping every 20ms
	t.Setenv("WATCHDOG_PID", "")
	var sick atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := systemdNotify(ctx, slog.New(slog.DiscardHandler), func() (string, error) {
		if sick.Load() {
			return "", errors.New("queue: database not open")
		}
		return "fine", nil
	})
	defer stop()
	if m, _ := s.waitFor(t, "READY=1", 5*time.Second); m != "READY=1\nSTATUS=fine" {
		t.Errorf("ready: %q", m)
	}
	s.waitFor(t, "WATCHDOG=1", 5*time.Second)
	sick.Store(true)
	s.waitFor(t, "STATUS=unhealthy: queue: database not open", 5*time.Second)
	// Once a sick probe has been seen, no ping may follow while sick.
	for range 5 {
		select {
		case m := <-s.msgs:
			if strings.Contains(m, "WATCHDOG=1") {
				t.Fatalf("watchdog pinged while unhealthy: %q", m)
			}
		case <-time.After(time.Second):
			t.Fatal("no status updates while unhealthy")
		}
	}
	sick.Store(false)
	s.waitFor(t, "WATCHDOG=1", 5*time.Second)
	cancel()
	s.waitFor(t, "STOPPING=1", 5*time.Second)
	stop() // STOPPING=1 is sent once
	select {
	case m := <-s.msgs:
		if strings.Contains(m, "STOPPING=1") {
			t.Errorf("STOPPING=1 sent twice")
		}
	case <-time.After(100 * time.Millisecond):
	}
}

// The real binary, started as systemd would with Type=notify and
// WatchdogSec=: READY=1 arrives once MQTT clients can connect, WATCHDOG=1
// follows at half of WATCHDOG_USEC, and SIGTERM sends STOPPING=1 before a
// clean exit.
func TestNotifyRealBinary(t *testing.T) {
	name := filepath.Join(shortDir(t), "notify")
	s := listenNotify(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100ms
	t.Setenv("WATCHDOG_PID", "")
	p := startOutpost(t, writeConfig(t, t.TempDir(), ""))

	ready, _ := s.waitFor(t, "READY=1", 10*time.Second)
	if !strings.Contains(ready, "STATUS=listening on "+p.addr+"; 0 messages") {
		t.Errorf("READY datagram without the status line: %q", ready)
	}
	c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatalf("READY=1 sent but the listener refuses: %v", err)
	}
	c.Close()
	start := time.Now()
	for range 3 {
		s.waitFor(t, "WATCHDOG=1", 5*time.Second)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("3 watchdog pings in %v: faster than every 100ms", d)
	}

	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
	}
	stopping, _ := s.waitFor(t, "STOPPING=1", 5*time.Second)
	if !strings.Contains(stopping, "STATUS=stopping") {
		t.Errorf("STOPPING datagram: %q", stopping)
	}
}
