// Command kafkafloor is the floor of BenchmarkKafkaDrain's memory figures:
// a bare franz-go producer, in a process of its own, sending records shaped
// like the Kafka bridge's (key, five headers, value) with the bridge's
// producer settings, and reusing them as outpost does, so that what its
// resident set grows by is what franz-go itself takes to send at that rate.
//
// It connects and sends one record, prints "ready" and waits for a line on
// standard input; then it sends -n records, prints "done" once all are
// acknowledged, and exits when standard input closes.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "", "seed brokers, comma-separated")
	topic := flag.String("topic", "floor", "topic to produce to")
	n := flag.Int("n", 1000000, "records to send")
	window := flag.Int("window", 2000, "records buffered or in flight at most")
	linger := flag.Duration("linger", 100*time.Millisecond, "batch linger")
	maxBytes := flag.Int("max-bytes", 1<<20, "batch size limit in bytes")
	codec := flag.String("codec", "none", "none or zstd")
	zstdLevel := flag.Int("zstd-level", 1, "zstd level")
	gc := flag.Int("gc-percent", 100, "GOGC")
	keys := flag.Int("keys", 8, "distinct keys")
	flag.Parse()
	if err := run(*brokers, *topic, *n, *window, *linger, *maxBytes, *codec, *zstdLevel, *gc, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "kafkafloor:", err)
		os.Exit(1)
	}
}

func run(brokers, topic string, n, window int, linger time.Duration, maxBytes int, codec string, zstdLevel, gc, keys int) error {
	debug.SetGCPercent(gc)
	comp := kgo.NoCompression()
	switch codec {
	case "none":
	case "zstd":
		comp = kgo.ZstdCompression().WithLevel(zstdLevel)
	default:
		return fmt.Errorf("unknown codec %q", codec)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(math.MaxInt), kgo.RecordDeliveryTimeout(0),
		kgo.ProducerLinger(linger), kgo.ProducerBatchMaxBytes(int32(maxBytes)), kgo.MaxBufferedRecords(window+1),
		kgo.ProducerBatchCompression(comp), kgo.DisableClientMetrics())
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("warm-up")}).FirstErr(); err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}

	// The free records outnumber the window, so that franz-go's buffer
	// limit is what blocks (and it sends without lingering then), as with
	// outpost's bridge.
	free := make(chan *kgo.Record, window+100)
	for range cap(free) {
		free <- &kgo.Record{Topic: topic, Headers: make([]kgo.RecordHeader, 5)}
	}
	failed := make(chan error, 1)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			select {
			case failed <- err:
			default:
			}
		}
		free <- r
	}
	payload := []byte(strings.Repeat("x", 64))
	for i := range n {
		r := <-free
		k := i % keys
		r.Key = fmt.Appendf(r.Key[:0], "test-gw/s%d", k)
		r.Value = append(r.Value[:0], payload...)
		h := r.Headers
		h[0].Key, h[0].Value = "mqtt_topic", fmt.Appendf(h[0].Value[:0], "sensors/s%d/t", k)
		h[1].Key, h[1].Value = "mqtt_qos", append(h[1].Value[:0], '1')
		h[2].Key, h[2].Value = "gateway_id", append(h[2].Value[:0], "test-gw"...)
		h[3].Key, h[3].Value = "seq", strconv.AppendInt(h[3].Value[:0], int64(i+1), 10)
		h[4].Key, h[4].Value = "received_at", time.Now().UTC().AppendFormat(h[4].Value[:0], "2006-01-02T15:04:05.000Z07:00")
		r.Timestamp = time.Time{}
		cl.Produce(ctx, r, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case err := <-failed:
		return err
	default:
	}
	fmt.Println("done")
	_, err = io.Copy(io.Discard, in)
	return err
}
