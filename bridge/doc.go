// Package bridge forwards the durable queue upstream and receives from it.
//
// Each bridge reads its messages from its own position in the queue
// ([storage.Bridge]), keeps up to two batches in flight on the upstream
// connection, and moves its durable position forward, in order, only past
// messages the upstream has acknowledged (MQTT PUBACK for QoS 1, written for
// QoS 0). When the connection is lost, everything after the durable position
// is sent again on the next one: delivery is at-least-once and in order per
// route, with duplicates only around a cut. Connections are owned by the
// bridge's own loop, with a jittered exponential backoff between attempts.
//
// The route and template code all bridges share is in bridge/route.
package bridge
