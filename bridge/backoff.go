package bridge

import (
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
