package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
)

// The chaos test's Kafka upstream: a one-broker kfake cluster behind its own
// bridgetest.Proxy. A Kafka client dials the seed brokers only once, then
// follows the addresses the brokers advertise in their metadata; a kfake
// broker advertises its listener's address. So the broker listens on a
// private port, and its listener reports the proxy's address as its own:
// outpost, seeded with the proxy, finds the proxy in the metadata too, and
// every byte between them crosses it. The auditor's consumer dials the
// private port directly (kgo.Dialer), so a cut never stalls the audit.

// chaosKafkaTopic is where the lake bridge produces; chaosKafkaPartitions
// partitions, keyed by sensor: order holds per partition.
const (
	chaosKafkaTopic      = "chaos.telemetry"
	chaosKafkaPartitions = 2
)

// advertisedListener is a listener that reports another address as its own.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

// startKafkaUpstream starts the cluster and its proxy, and a consumer that
// hands every record of chaosKafkaTopic to onRecord until the test ends.
func startKafkaUpstream(t *testing.T, onRecord func(*kgo.Record)) *bridgetest.Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	private := ln.Addr().String()
	proxy := bridgetest.NewProxy(t, private)
	host, port, _ := net.SplitHostPort(proxy.Addr())
	p, _ := strconv.Atoi(port)
	advertised := &net.TCPAddr{IP: net.ParseIP(host), Port: p}
	var once sync.Once
	listen := func(string, string) (net.Listener, error) {
		var l net.Listener = nil
		once.Do(func() { l = advertisedListener{ln, advertised} })
		if l == nil {
			return nil, errors.New("chaos kafka: one broker only")
		}
		return l, nil
	}
	bridgetest.NewKafka(t, 1, kfake.ListenFn(listen), kfake.SeedTopics(chaosKafkaPartitions, chaosKafkaTopic))

	direct := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, private)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(private), kgo.Dialer(direct), kgo.ConsumeTopics(chaosKafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(topic string, p int32, err error) {
				if ctx.Err() == nil {
					fmt.Printf("chaos: consuming %s/%d: %v\n", topic, p, err)
				}
			})
			fs.EachRecord(onRecord)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return proxy
}
