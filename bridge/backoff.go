package bridge

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Clock is the time source of the reconnect loop; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Backoff is a jittered exponential backoff between Min and Max: the n-th
// consecutive failure waits a random duration in [d/2, d], d = Min·2ⁿ capped
// at Max. A success resets it.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay and counts a failure.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.n, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset is called after a success.
func (b *Backoff) Reset() { b.n = 0 }

// reconnect runs session after session until ctx is done, waiting a backoff
// between them. A session reports whether it got somewhere (the backoff
// starts again from reconnect.min) and whether the next one is to start at
// once, and the error that ended it, which is logged and kept in the
// bridge's Stats.
func reconnect(ctx context.Context, o *Options, c *counters, log *slog.Logger, session func(context.Context) (progressed, now bool, err error)) {
	bo := &Backoff{Min: o.Config.Reconnect.Min, Max: o.Config.Reconnect.Max}
	if bo.Min <= 0 {
		bo.Min = 500 * time.Millisecond
	}
	if bo.Max < bo.Min {
		bo.Max = max(time.Minute, bo.Min)
	}
	for {
		progressed, now, err := session(ctx)
		c.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.setErr(err)
		}
		if progressed {
			bo.Reset()
		}
		if now {
			continue
		}
		d := bo.Next()
		log.Warn("upstream unavailable; messages stay queued", "error", err, "retry_in", d.Round(time.Millisecond), "pending", o.Queue.Pending())
		select {
		case <-o.Clock.After(d):
		case <-ctx.Done():
			return
		}
	}
}
