package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/storage"
)

// BenchmarkRSSBacklog measures the resident memory of the real binary with an
// empty queue, after a backlog of OUTPOST_BENCH_MESSAGES (default 1,000,000)
// 64-byte QoS 1 messages was published to it, and after a restart on that
// backlog. The bridge "cloud" never reaches its upstream, so every message
// stays queued. Memory is read from /proc/<pid>/status: VmRSS, split into
// RssAnon (Go heap, stacks, runtime) and RssFile (the binary's pages and
// bbolt's read-only mmap of the queue file).
func BenchmarkRSSBacklog(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status")
	}
	n := benchMessages(b)
	for range b.N {
		dir := b.TempDir()
		cfg := writeConfig(b, dir, "")

		p := startOutpost(b, cfg)
		time.Sleep(time.Second)
		idle := readRSS(b, p)

		start := time.Now()
		publishBacklog(b, p.addr, n)
		took := time.Since(start)
		time.Sleep(2 * time.Second)
		backlog := readRSS(b, p)
		stopClean(b, p)

		p = startOutpost(b, cfg)
		time.Sleep(time.Second)
		restart := readRSS(b, p)
		if want := fmt.Sprintf(" queued=%d ", n); !strings.Contains(p.logs.String(), want) {
			b.Errorf("restarted outpost does not report%s:\n%s", want, p.logs)
		}
		stopClean(b, p)

		q, err := storage.OpenReadOnly(filepath.Join(dir, "data", "queue.db"), storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := q.Stats()
		q.Close()
		if err != nil {
			b.Fatal(err)
		}
		if st.Messages != uint64(n) || st.LastSeq != uint64(n) || len(st.Bridges) != 1 || st.Bridges[0].Pending != uint64(n) {
			b.Fatalf("queue after the runs: %d messages, last seq %d, bridges %+v; want %d for cloud", st.Messages, st.LastSeq, st.Bridges, n)
		}
		fi, err := os.Stat(filepath.Join(dir, "data", "queue.db"))
		if err != nil {
			b.Fatal(err)
		}

		ratio := backlog.rss / idle.rss
		b.ReportMetric(idle.rss, "idle-rss-MiB")
		b.ReportMetric(backlog.rss, "backlog-rss-MiB")
		b.ReportMetric(backlog.anon, "backlog-anon-MiB")
		b.ReportMetric(backlog.file, "backlog-file-MiB")
		b.ReportMetric(restart.rss, "restart-rss-MiB")
		b.ReportMetric(ratio, "ratio")
		b.Logf("%d messages (%.0f msgs/s, queue file %.1f MiB): RSS MiB (anon+file) idle %s, backlog %s, restart %s; backlog/idle %.2f, restart/idle %.2f",
			n, float64(n)/took.Seconds(), float64(fi.Size())/(1<<20), idle, backlog, restart, ratio, restart.rss/idle.rss)
	}
}

// rss is a process's resident memory in MiB.
type rss struct{ rss, anon, file float64 }

func (r rss) String() string { return fmt.Sprintf("%.1f (%.1f+%.1f)", r.rss, r.anon, r.file) }

func readRSS(tb testing.TB, p *proc) rss {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var r rss
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *float64
		switch k {
		case "VmRSS":
			dst = &r.rss
		case "RssAnon":
			dst = &r.anon
		case "RssFile":
			dst = &r.file
		default:
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			tb.Fatalf("/proc/<pid>/status: %s:%s", k, v)
		}
		*dst = kb / 1024
	}
	if err := sc.Err(); err != nil || r.rss == 0 {
		tb.Fatalf("reading VmRSS of outpost: %v", err)
	}
	return r
}

// publishBacklog publishes n 64-byte QoS 1 messages to sensors/... from a few
// publishers, each with up to 100 unacknowledged, and fails unless every one
// is acknowledged.
func publishBacklog(tb testing.TB, addr string, n int) {
	tb.Helper()
	const publishers, window = 4, 100
	payload := strings.Repeat("x", 64)
	errs := make([]error, publishers)
	var wg sync.WaitGroup
	for c := range publishers {
		count := n / publishers
		if c < n%publishers {
			count++
		}
		wg.Go(func() {
			id := fmt.Sprintf("rss-%d", c)
			cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
				SetAutoReconnect(false).SetConnectRetry(false).SetWriteTimeout(10 * time.Second))
			if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				errs[c] = fmt.Errorf("%s: connect: %v", id, tok.Error())
				return
			}
			defer cl.Disconnect(0)
			// PUBACKs come in publish order: one goroutine waits for the
			// tokens in that order; the channel bounds the window.
			toks := make(chan paho.Token, window)
			acked := make(chan error, 1)
			go func() {
				var err error
				ok := 0
				for tok := range toks {
					if err == nil && (!tok.WaitTimeout(time.Minute) || tok.Error() != nil) {
						err = fmt.Errorf("%s: publish not acknowledged: %v", id, tok.Error())
					}
					ok++
				}
				if err == nil && ok != count {
					err = fmt.Errorf("%s: %d of %d messages acknowledged", id, ok, count)
				}
				acked <- err
			}()
			for i := range count {
				toks <- cl.Publish(fmt.Sprintf("sensors/rss/%d", c), 1, false, payload)
				if i%1024 == 0 && !cl.IsConnectionOpen() {
					break
				}
			}
			close(toks)
			errs[c] = <-acked
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// stopClean stops outpost with SIGTERM and fails unless it exits cleanly.
func stopClean(tb testing.TB, p *proc) {
	tb.Helper()
	if err := p.stop(tb, syscall.SIGTERM); err != nil || !strings.Contains(p.logs.String(), "outpost stopped cleanly") {
		tb.Fatalf("SIGTERM: exit %v\n%s", err, p.logs)
	}
}
