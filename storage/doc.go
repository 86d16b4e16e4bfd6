// Package storage is outpost's durable outage queue: an append-only log of
// messages in a bbolt file, keyed by a per-gateway sequence number.
//
// Publishers call [Queue.Enqueue] and wait on the returned [Ticket]; a single
// committer goroutine writes every message enqueued since its last commit in
// one bbolt transaction and one fsync (group commit), then releases all their
// tickets at once. A message is acknowledged to its sensor only after that.
//
// Each bridge reads the log from its own durable position through a
// [Bridge] handle and acknowledges what its upstream has acknowledged. A
// record carries a mask of the bridges that must forward it and is gone
// when the last of them has passed it, or when a limit (max age, max size)
// drops it, which is counted by reason. Nothing else deletes a record. The
// log is cut into segments of 1024 sequence numbers, and a segment that
// every bridge has passed is deleted whole (see segment.go).
//
// The counters (messages, bytes, drops, per-bridge position and pending
// count) are kept in one state record written in the same transaction as the
// change they describe, so opening a queue of millions of messages reads no
// more than that record.
package storage
