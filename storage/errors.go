package storage

import "errors"

var (
	// ErrClosed is returned by operations on a closed queue.
	ErrClosed = errors.New("storage: queue closed")
	// ErrFull is returned for a message refused because the queue is full
	// and its policy is reject_new (or the disk is full).
	ErrFull = errors.New("storage: queue full")
	// ErrLocked is returned by Open when another process holds the queue file.
	ErrLocked = errors.New("storage: queue file is in use by another process")
	// ErrTooManyBridges is returned by Open when more than 64 bridges would be registered.
	ErrTooManyBridges = errors.New("storage: more than 64 bridges")
	// ErrUnknownBridge is returned for a bridge name that Open was not given.
	ErrUnknownBridge = errors.New("storage: unknown bridge")
	// ErrCorrupt is returned when the queue file's structure is damaged.
	ErrCorrupt = errors.New("storage: queue file corrupt")
)

// Drop reasons, the values of outpost_dropped_total's reason label that the
// queue itself produces.
const (
	ReasonQueueFull = "queue_full" // evicted by drop_oldest, or QoS 0 refused by reject_new
	ReasonMaxAge    = "max_age"    // older than queue.max_age
	ReasonCorrupt   = "corrupt"    // record failed its checksum
)

var reasons = [...]string{ReasonQueueFull, ReasonMaxAge, ReasonCorrupt}

func reasonIndex(r string) int {
	for i, s := range reasons {
		if s == r {
			return i
		}
	}
	panic("storage: unknown drop reason " + r)
}
