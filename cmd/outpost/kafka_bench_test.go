package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/storage"
)

// Batching of the benchmarked bridge, and of the baseline producer.
const (
	kbMaxMessages = 1000
	kbMaxDelay    = 100 * time.Millisecond
	kbMaxBytes    = 1 << 20
	kbKeys        = 8
)

// BenchmarkKafkaDrain measures the real binary draining a backlog of
// OUTPOST_BENCH_MESSAGES (default 1,000,000) queued 64-byte messages to a
// 3-broker kfake cluster (in this process, storing nothing), with
// compression none and zstd, against a baseline in the same run: a plain
// franz-go producer sending the same records (key, headers, value) from
// memory to the same cluster with the same batching.
//
// The queue is filled with the storage package before outpost starts; the
// cluster starts after outpost's idle RSS is read (the bridge cannot reach
// it until then). Drain time runs from the first record the cluster takes
// to the last. Peak RSS is VmHWM of /proc/<pid>/status.
func BenchmarkKafkaDrain(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status")
	}
	n := benchMessages(b)
	for _, codec := range []string{"none", "zstd"} {
		b.Run(codec, func(b *testing.B) {
			for range b.N {
				benchKafkaDrain(b, n, codec)
			}
		})
	}
}

func benchKafkaDrain(b *testing.B, n int, codec string) {
	dir := b.TempDir()
	ports := bridgetest.FreePorts(b, 3)
	brokers := bridgetest.Addrs(ports)
	cfg := writeKafkaConfig(b, dir, brokers, ", compression: "+codec,
		fmt.Sprintf("    batch: {max_messages: %d, max_bytes: %d, max_delay: %s}\n", kbMaxMessages, kbMaxBytes, kbMaxDelay))
	fillKafkaQueue(b, filepath.Join(dir, "data", "queue.db"), n)

	p := startOutpost(b, cfg)
	time.Sleep(time.Second)
	idle := readRSS(b, p)

	c := bridgetest.NewKafka(b, 3, kfake.Ports(ports...), kfake.SeedTopics(kbKeys, "telemetry", "baseline"), kfake.BlackholeProduce())
	produced := func(topic string) int64 {
		var sum int64
		for _, pi := range c.PartitionInfos(topic) {
			sum += pi.HighWatermark
		}
		return sum
	}
	deadline := time.Now().Add(30 * time.Minute)
	for produced("telemetry") == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("nothing produced:\n%s", p.logs)
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for produced("telemetry") < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d produced:\n%s", produced("telemetry"), n, p.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	peak := readStatusMiB(b, p, "VmHWM")
	end := readRSS(b, p)
	cpu, err := procCPU(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	stopClean(b, p)
	if got := produced("telemetry"); got != int64(n) {
		b.Fatalf("%d records produced for %d messages", got, n)
	}

	base := baselineProduce(b, c.ListenAddrs(), n, codec)
	rate, baseRate := float64(n)/took.Seconds(), float64(n)/base.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(baseRate, "baseline-msgs/s")
	b.ReportMetric(rate/baseRate, "vs-baseline")
	b.ReportMetric(idle.rss, "idle-rss-MiB")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.ReportMetric(peak/idle.rss, "peak/idle")
	b.ReportMetric(float64(cpu/time.Microsecond)/float64(n), "outpost-cpu-µs/msg")
	b.Logf("%s, %d messages: drain %.0f msgs/s (%s), baseline %.0f msgs/s (%s), %.2fx; RSS MiB (anon+file) idle %s, after %s, peak (VmHWM) %.1f, peak/idle %.2f",
		codec, n, rate, took.Round(time.Millisecond), baseRate, base.Round(time.Millisecond), rate/baseRate, idle, end, peak, peak/idle.rss)
	b.Logf("outpost used %v of CPU (user+system, startup included): %.2f µs per message", cpu.Round(time.Millisecond), float64(cpu/time.Microsecond)/float64(n))
}

// benchRecord is message i as outpost produces it, for the baseline.
func benchRecord(i int, payload []byte) *kgo.Record {
	topic := fmt.Sprintf("sensors/s%d/t", i%kbKeys)
	return &kgo.Record{
		Topic: "baseline",
		Key:   []byte(fmt.Sprintf("test-gw/s%d", i%kbKeys)),
		Value: payload,
		Headers: []kgo.RecordHeader{
			{Key: "mqtt_topic", Value: []byte(topic)},
			{Key: "mqtt_qos", Value: []byte("1")},
			{Key: "gateway_id", Value: []byte("test-gw")},
			{Key: "seq", Value: strconv.AppendInt(nil, int64(i+1), 10)},
			{Key: "received_at", Value: []byte(time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))},
		},
	}
}

// fillKafkaQueue queues n 64-byte QoS 1 messages for the bridge "lake", on
// kbKeys sensors' topics.
func fillKafkaQueue(b *testing.B, path string, n int) {
	q, err := storage.Open(path, storage.Options{Bridges: []string{"lake"}})
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(strings.Repeat("x", 64))
	var last *storage.Ticket
	for i := range n {
		last, err = q.Enqueue(context.Background(), &storage.Message{Topic: fmt.Sprintf("sensors/s%d/t", i%kbKeys), Payload: payload, QoS: 1, Bridges: 1})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := last.Wait(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
}

// baselineProduce sends n records from memory with the bridge's producer
// settings and returns how long they took to be acknowledged.
func baselineProduce(b *testing.B, brokers []string, n int, codec string) time.Duration {
	comp := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "zstd": kgo.ZstdCompression().WithLevel(bridge.ZstdLevel)}[codec]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(kbMaxDelay), kgo.ProducerBatchMaxBytes(kbMaxBytes), kgo.MaxBufferedRecords(2*kbMaxMessages+1),
		kgo.ProducerBatchCompression(comp))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, n)
	payload := []byte(strings.Repeat("x", 64))
	for i := range recs {
		recs[i] = benchRecord(i, payload)
	}
	var failed atomic.Pointer[error]
	start := time.Now()
	for _, r := range recs {
		cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return took
}

// readStatusMiB reads one kB field of /proc/<pid>/status, in MiB.
func readStatusMiB(tb testing.TB, p *proc, field string) float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				tb.Fatalf("/proc/<pid>/status: %s:%s", k, v)
			}
			return kb / 1024
		}
	}
	tb.Fatalf("no %s in /proc/<pid>/status", field)
	return 0
}
