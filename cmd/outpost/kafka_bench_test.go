package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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
// The queue is filled with the storage package once, and copied for each
// run before outpost starts; the cluster starts after outpost's idle RSS is
// read (the bridge cannot reach it until then). Drain time runs from the
// first record the cluster takes to the last. Peak RSS is VmHWM of
// /proc/<pid>/status. Each run also prints the produce requests the cluster
// received and how many records a partition's batch held on average, the
// CPU used per message (by outpost, by the cluster during the drain, and by
// the cluster and the baseline producer together, one process), and the
// CPU time the host stole.
//
// The floor of the memory figures comes last in each run: a bare franz-go
// producer (internal/kafkafloor), in a process of its own, sends n records
// of the same shape with the bridge's producer settings, reusing them as
// the bridge does, and the benchmark reports how much its resident set grew
// from idle (connected, one record sent) to its peak. That is what
// franz-go itself takes to send at that rate, and outpost's growth during
// the drain, which includes reading the queue, compares with it.
//
// Both rates vary from run to run with the machine's load, the baseline's
// most: each codec runs OUTPOST_BENCH_ROUNDS times (default 3), drain and
// baseline in turn, and the metrics are the medians of the rounds.
func BenchmarkKafkaDrain(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status")
	}
	n, rounds := benchMessages(b), benchRounds(b)
	queue := filepath.Join(b.TempDir(), "queue.db")
	fillKafkaQueue(b, queue, n)
	floor := buildFloor(b)
	for _, codec := range []string{"none", "zstd"} {
		b.Run(codec, func(b *testing.B) {
			var rs []kafkaRun
			for range b.N * rounds {
				rs = append(rs, benchKafkaDrain(b, n, codec, queue, floor))
			}
			med := func(f func(kafkaRun) float64) float64 {
				v := make([]float64, len(rs))
				for i, r := range rs {
					v[i] = f(r)
				}
				slices.Sort(v)
				if len(v)%2 == 1 {
					return v[len(v)/2]
				}
				return (v[len(v)/2-1] + v[len(v)/2]) / 2
			}
			rate, base := med(func(r kafkaRun) float64 { return r.rate }), med(func(r kafkaRun) float64 { return r.baseRate })
			ratio, rss := med(func(r kafkaRun) float64 { return r.rate / r.baseRate }), med(func(r kafkaRun) float64 { return r.peak / r.idle })
			cpu := med(func(r kafkaRun) float64 { return r.cpu })
			grew, floorGrew := med(func(r kafkaRun) float64 { return r.peak - r.idle }), med(func(r kafkaRun) float64 { return r.floorPeak - r.floorIdle })
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(base, "baseline-msgs/s")
			b.ReportMetric(ratio, "vs-baseline")
			b.ReportMetric(med(func(r kafkaRun) float64 { return r.idle }), "idle-rss-MiB")
			b.ReportMetric(med(func(r kafkaRun) float64 { return r.peak }), "peak-rss-MiB")
			b.ReportMetric(rss, "peak/idle")
			b.ReportMetric(cpu, "outpost-cpu-µs/msg")
			b.ReportMetric(grew, "rss-growth-MiB")
			b.ReportMetric(floorGrew, "floor-rss-growth-MiB")
			b.Logf("%s, %d messages, medians of %d runs: drain %.0f msgs/s, baseline %.0f msgs/s, drain/baseline %.2fx; peak/idle RSS %.2f; outpost %.2f µs of CPU per message; RSS growth: outpost %.1f MiB, a bare franz-go producer %.1f MiB",
				codec, n, len(rs), rate, base, ratio, rss, cpu, grew, floorGrew)
		})
	}
}

// benchRounds is OUTPOST_BENCH_ROUNDS, default 3.
func benchRounds(b *testing.B) int {
	s := os.Getenv("OUTPOST_BENCH_ROUNDS")
	if s == "" {
		return 3
	}
	r, err := strconv.Atoi(s)
	if err != nil || r < 1 {
		b.Fatalf("OUTPOST_BENCH_ROUNDS=%q: want a positive count", s)
	}
	return r
}

// kafkaRun is one run's figures: rates in msgs/s, RSS in MiB (outpost's,
// and the floor producer's), outpost's CPU during the drain in µs per
// message.
type kafkaRun struct{ rate, baseRate, idle, peak, floorIdle, floorPeak, cpu float64 }

// benchKafkaDrain runs outpost on a copy of the queue file queue, holding n
// messages, then the baseline, then the floor producer (the binary floor).
func benchKafkaDrain(b *testing.B, n int, codec, queue, floor string) kafkaRun {
	dir := b.TempDir()
	ports := bridgetest.FreePorts(b, 3)
	brokers := bridgetest.Addrs(ports)
	cfg := writeKafkaConfig(b, dir, brokers, ", compression: "+codec,
		fmt.Sprintf("    batch: {max_messages: %d, max_bytes: %d, max_delay: %s}\n", kbMaxMessages, kbMaxBytes, kbMaxDelay))
	copyFile(b, queue, filepath.Join(dir, "data", "queue.db"))

	p := startOutpost(b, cfg)
	time.Sleep(time.Second)
	idle := readRSS(b, p)

	c := bridgetest.NewKafka(b, 3, kfake.Ports(ports...), kfake.SeedTopics(kbKeys, "telemetry", "baseline", "floor"), kfake.BlackholeProduce())
	// Produce requests and partition batches, of the drain and then of the
	// baseline (requests name topics by ID).
	var reqs, batches atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		reqs.Add(1)
		for _, t := range kr.(*kmsg.ProduceRequest).Topics {
			batches.Add(int64(len(t.Partitions)))
		}
		return nil, nil, false
	})
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
	start, host0 := time.Now(), readHostCPU()
	cpu0, self0 := cpuOf(b, p.cmd.Process.Pid), cpuOf(b, os.Getpid())
	for produced("telemetry") < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d produced:\n%s", produced("telemetry"), n, p.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	took, host := time.Since(start), readHostCPU()
	peak := readStatusMiB(b, p, "VmHWM")
	end := readRSS(b, p)
	cpu, self := cpuOf(b, p.cmd.Process.Pid), cpuOf(b, os.Getpid())
	stopClean(b, p)
	if got := produced("telemetry"); got != int64(n) {
		b.Fatalf("%d records produced for %d messages", got, n)
	}
	os.RemoveAll(filepath.Join(dir, "data")) // a copy of the queue a run: not all of them at once

	dr, db := reqs.Swap(0), batches.Swap(0)
	baseHost0 := readHostCPU()
	base, baseCPU := baselineProduce(b, c.ListenAddrs(), n, codec)
	baseHost := readHostCPU()
	br, bb := reqs.Load(), batches.Load()
	floorIdle, floorPeak := floorProduce(b, floor, c.ListenAddrs(), n, codec)
	if got := produced("floor"); got != int64(n)+1 {
		b.Fatalf("the floor producer: %d records produced for %d and its warm-up record", got, n)
	}
	rate, baseRate := float64(n)/took.Seconds(), float64(n)/base.Seconds()
	b.Logf("%s, %d messages: drain %.0f msgs/s (%s), baseline %.0f msgs/s (%s), %.2fx; RSS MiB (anon+file) idle %s, after %s, peak (VmHWM) %.1f, peak/idle %.2f",
		codec, n, rate, took.Round(time.Millisecond), baseRate, base.Round(time.Millisecond), rate/baseRate, idle, end, peak, peak/idle.rss)
	// (A benchmark's log is cut after ten lines: two a run.)
	b.Logf("  produce requests: drain %d (%.0f records per partition batch), baseline %d (%.0f); outpost used %v of CPU (user+system, startup included): %.2f µs per message, %.2f during the drain; the cluster %.2f µs per message during the drain, and the cluster with the baseline producer %.2f; CPU time stolen by the host: %.0f%% during the drain, %.0f%% during the baseline; a bare franz-go producer's RSS MiB: idle %s, peak %.1f, +%.1f (outpost +%.1f)",
		dr, float64(n)/float64(db), br, float64(n)/float64(bb),
		cpu.Round(time.Millisecond), perMsg(cpu, n), perMsg(cpu-cpu0, n), perMsg(self-self0, n), perMsg(baseCPU, n),
		stolen(host0, host), stolen(baseHost0, baseHost), floorIdle, floorPeak, floorPeak-floorIdle.rss, peak-idle.rss)
	return kafkaRun{rate: rate, baseRate: baseRate, idle: idle.rss, peak: peak, floorIdle: floorIdle.rss, floorPeak: floorPeak, cpu: perMsg(cpu-cpu0, n)}
}

// buildFloor builds internal/kafkafloor, the floor producer.
func buildFloor(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "kafkafloor")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/kafkafloor")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the floor producer: %v\n%s", err, out)
	}
	return bin
}

// floorProduce runs the floor producer bin, sending n records to the topic
// "floor" with the bridge's batching and codec, and returns its RSS once it
// has connected and idled for a second, and its peak (VmHWM) once all are
// acknowledged.
func floorProduce(b *testing.B, bin string, brokers []string, n int, codec string) (idle rss, peak float64) {
	cmd := exec.Command(bin, "-brokers", strings.Join(brokers, ","), "-n", strconv.Itoa(n),
		"-window", strconv.Itoa(2*kbMaxMessages), "-linger", kbMaxDelay.String(), "-max-bytes", strconv.Itoa(kbMaxBytes),
		"-codec", codec, "-zstd-level", strconv.Itoa(bridge.ZstdLevel), "-gc-percent", strconv.Itoa(gcPercent), "-keys", strconv.Itoa(kbKeys))
	cmd.SysProcAttr = dieWithTest()
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { // it exits when its input closes, once done; killed if not by then
		in.Close()
		kill := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		kill.Stop()
	}()
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		if !lines.Scan() || lines.Text() != want {
			b.Fatalf("the floor producer: want %q, got %q (%v)", want, lines.Text(), lines.Err())
		}
	}
	expect("ready")
	time.Sleep(time.Second)
	p := &proc{cmd: cmd}
	idle = readRSS(b, p)
	if _, err := io.WriteString(in, "go\n"); err != nil {
		b.Fatal(err)
	}
	expect("done")
	return idle, readStatusMiB(b, p, "VmHWM")
}

// copyFile copies the file at from to to, making to's directory.
func copyFile(b *testing.B, from, to string) {
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
		b.Fatal(err)
	}
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
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
// settings and returns how long they took to be acknowledged, and the CPU
// this process (the producer and the cluster) used meanwhile.
func baselineProduce(b *testing.B, brokers []string, n int, codec string) (took, cpu time.Duration) {
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
	cpu0 := cpuOf(b, os.Getpid())
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
	took, cpu = time.Since(start), cpuOf(b, os.Getpid())
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return took, cpu - cpu0
}

// cpuOf is the CPU time process pid has used.
func cpuOf(b *testing.B, pid int) time.Duration {
	d, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// perMsg is d per message, in µs.
func perMsg(d time.Duration, n int) float64 { return float64(d/time.Nanosecond) / 1e3 / float64(n) }

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
