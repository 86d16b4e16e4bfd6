// Package broker runs the MQTT broker that the gateway's sensors publish to:
// an embedded mochi-mqtt server whose hook writes every message that a
// bridge must forward into the durable queue before it is acknowledged.
//
// The acknowledgement of a QoS 1 or 2 message (PUBACK, PUBREC) is written
// only after the queue commit that holds the message is on disk. A client's
// read loop does not wait for that: the hook hands the message to the
// queue's group commit and moves on to the client's next packet, and a
// per-client acker writes the acknowledgements, in order, as commits end.
// So a client with many messages in flight shares each fsync with every
// other publisher, and durability costs one fsync per commit, not per
// message. A client with MaxInflight messages waiting for their commit is
// not read from until one is answered.
//
// Messages that no bridge route matches take mochi's ordinary path.
package broker
