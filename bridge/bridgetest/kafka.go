package bridgetest

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FreePorts returns n loopback ports that were free a moment ago, for a
// peer that must start later on a known address.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// Addrs returns 127.0.0.1:port for each port.
func Addrs(ports []int) []string {
	var a []string
	for _, p := range ports {
		a = append(a, "127.0.0.1:"+strconv.Itoa(p))
	}
	return a
}

// NewKafka starts an in-process Kafka cluster (franz-go's kfake) of brokers
// brokers on loopback, closed when the test ends. opts come after the
// defaults (ephemeral loopback ports, topics created on first use with 4 partitions).
func NewKafka(t testing.TB, brokers int, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	o := append([]kfake.Opt{
		kfake.NumBrokers(brokers),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(4),
	}, opts...)
	c, err := kfake.NewCluster(o...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// ConsumeAll reads topic from the start until n records have come, failing
// the test after d. Records are in partition order; partitions interleave.
func ConsumeAll(t testing.TB, brokers []string, topic string, n int, d time.Duration, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: consumed %d of %d records in %s", topic, len(got), n, d)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("consuming %s/%d: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	return got
}
