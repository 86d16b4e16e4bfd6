package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLimited is a slog.Handler that passes at most burst records with the
// same level and message per window, so that a misbehaving sensor or a full
// queue cannot flood the log. The first record let through after others were
// held back carries suppressed=N.
type rateLimited struct {
	next   slog.Handler
	burst  int
	window time.Duration
	now    func() time.Time
	s      *limiterState // shared by the handlers WithAttrs/WithGroup derive
}

type limiterState struct {
	mu    sync.Mutex
	start time.Time
	seen  map[limiterKey]*limiterCount
}

type limiterKey struct {
	level slog.Level
	msg   string
}

type limiterCount struct{ passed, held int }

func newRateLimited(next slog.Handler, burst int, window time.Duration) *rateLimited {
	return &rateLimited{next: next, burst: burst, window: window, now: time.Now,
		s: &limiterState{seen: map[limiterKey]*limiterCount{}}}
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// everyLine marks a context whose records are never held back: lines that
// belong together and come once per operator action, such as every problem
// of a config refused on reload.
type everyLine struct{}

func logEveryLine(ctx context.Context) context.Context {
	return context.WithValue(ctx, everyLine{}, true)
}

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || ctx.Value(everyLine{}) != nil {
		return h.next.Handle(ctx, r) // only warnings and errors repeat per message
	}
	s := h.s
	s.mu.Lock()
	now := h.now()
	if now.Sub(s.start) >= h.window {
		s.start = now
		for k, c := range s.seen { // keep the held counts, forget the rest
			if c.held == 0 {
				delete(s.seen, k)
			} else {
				c.passed = 0
			}
		}
	}
	k := limiterKey{r.Level, r.Message}
	c := s.seen[k]
	if c == nil {
		c = &limiterCount{}
		s.seen[k] = c
	}
	if c.passed >= h.burst {
		c.held++
		s.mu.Unlock()
		return nil
	}
	c.passed++
	held := c.held
	c.held = 0
	s.mu.Unlock()
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", held))
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
