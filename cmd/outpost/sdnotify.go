package main

// sd_notify(3) without cgo or libsystemd: systemd (Type=notify) passes the
// path of a datagram socket in $NOTIFY_SOCKET, and the service writes
// newline-separated KEY=VALUE states to it. outpost sends
//
//	READY=1     once the listeners are bound and the queue is open
//	STATUS=...  what it serves and the backlog, shown by `systemctl status`
//	WATCHDOG=1  every half of $WATCHDOG_USEC while the queue answers
//	STOPPING=1  when shutdown begins
//
// Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// notifier writes to systemd's notification socket. A nil *notifier (no
// $NOTIFY_SOCKET) does nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier returns the notifier for $NOTIFY_SOCKET, or nil when it is
// unset. A name starting with '@' is a Linux abstract socket: Go's net
// package turns the leading '@' into the NUL byte that names one.
func newNotifier() *notifier {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	return &notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// notify sends one datagram with the given states, joined by newlines.
// systemd reads each datagram whole, so a state never arrives in halves.
func (n *notifier) notify(states ...string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// watchdogInterval returns how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. It is 0 when systemd
// wants no pings: WATCHDOG_USEC unset or invalid, or WATCHDOG_PID naming
// another process.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		if pid, err := strconv.Atoi(p); err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// statusEvery is how often STATUS= is refreshed when there is no watchdog.
const statusEvery = 30 * time.Second

// systemdNotify tells systemd that outpost is ready, then until ctx is done
// or stop is called: calls probe at each tick, pings the watchdog while it
// returns no error (a process whose queue no longer answers stops pinging,
// and systemd restarts it after WatchdogSec=), and sets STATUS= to the line
// it returns. STOPPING=1 is sent when ctx is done or at stop, whichever
// comes first. Without $NOTIFY_SOCKET it does nothing.
func systemdNotify(ctx context.Context, log *slog.Logger, probe func() (status string, err error)) (stop func()) {
	n := newNotifier()
	if n == nil {
		return func() {}
	}
	status, _ := probe()
	if err := n.notify("READY=1", "STATUS="+status); err != nil {
		log.Warn("telling systemd outpost is ready", "error", err)
	}
	every := watchdogInterval()
	watchdog := every > 0
	if !watchdog {
		every = statusEvery
	}
	done := make(chan struct{})
	var once sync.Once
	stopping := func() {
		once.Do(func() {
			close(done)
			if err := n.notify("STOPPING=1", "STATUS=stopping"); err != nil {
				log.Warn("telling systemd outpost is stopping", "error", err)
			}
		})
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				stopping()
				return
			case <-done:
				return
			case <-t.C:
			}
			status, err := probe()
			states := []string{"STATUS=" + status}
			if watchdog {
				if err != nil {
					if !failing {
						log.Error("unhealthy: not pinging the systemd watchdog", "error", err)
					}
					failing = true
					states = []string{"STATUS=unhealthy: " + err.Error()}
				} else {
					if failing {
						log.Info("healthy again: pinging the systemd watchdog")
					}
					failing = false
					states = append(states, "WATCHDOG=1")
				}
			}
			if err := n.notify(states...); err != nil {
				log.Debug("sd_notify", "error", err)
			}
		}
	}()
	return stopping
}

// queueProbe is outpost's health probe for the watchdog: the queue answers a
// read (a closed or wedged queue does not). Its status line names the
// listeners and the backlog.
func queueProbe(q *storage.Queue, addrs []string) func() (string, error) {
	return func() (string, error) {
		st, err := q.Stats()
		if err != nil {
			return "", fmt.Errorf("queue: %w", err)
		}
		return fmt.Sprintf("listening on %s; %d messages (%d bytes) queued", strings.Join(addrs, ","), st.Messages, st.Bytes), nil
	}
}
