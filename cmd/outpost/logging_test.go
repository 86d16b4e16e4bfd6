package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLimitedLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	h := newRateLimited(slog.NewTextHandler(&buf, nil), 3, 10*time.Second)
	h.now = func() time.Time { return now }
	log := slog.New(h).With("component", "queue")
	for range 10 {
		log.Warn("dropped", "n", 1)
		log.Info("routine")
	}
	log.Warn("other message")
	if got := strings.Count(buf.String(), "msg=dropped"); got != 3 {
		t.Fatalf("%d 'dropped' lines in one window, want 3:\n%s", got, buf.String())
	}
	if strings.Count(buf.String(), "msg=routine") != 10 || !strings.Contains(buf.String(), "other message") {
		t.Fatalf("info lines or other messages were limited:\n%s", buf.String())
	}
	buf.Reset()
	now = now.Add(11 * time.Second)
	log.Warn("dropped", "n", 1)
	if !strings.Contains(buf.String(), "suppressed=7") {
		t.Fatalf("first line of the next window must count the held ones:\n%s", buf.String())
	}
}
