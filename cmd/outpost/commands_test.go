package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/storage"
)

func runMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`gateway_id: gw
data_dir: /tmp/x
listeners:
  - {name: a, type: tcp, address: "127.0.0.1:1883"}
  - {name: b, type: tcp, address: "127.0.0.1:1883"}
queue:
  max_size: lots
  when_full: panic
colour: blue
`), 0o600)
	code, stdout, stderr := runMain(t, "", "check", "-c", path)
	if code != 1 || stdout != "" {
		t.Fatalf("check of a bad config: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{"bad.yaml:5: ", "bad.yaml:7: ", "bad.yaml:8: ", "bad.yaml:9: "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
	// One line per problem, each as file:line: message.
	lines := regexp.MustCompile(`(?m)^\S*bad\.yaml:\d+: .+$`).FindAllString(stderr, -1)
	if len(lines) < 4 {
		t.Fatalf("want at least 4 file:line problems, got %d:\n%s", len(lines), stderr)
	}
}

func TestCheckGoodConfig(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runMain(t, "", "check", "-c", writeConfig(t, dir, ""))
	if code != 0 || !strings.Contains(stdout, "bridge:     cloud (mqtt tcp://127.0.0.1:1)") || !strings.Contains(stdout, ": ok") {
		t.Fatalf("check: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"check"}, {"queue", "-c", "x.yaml"}, {"queue", "-c", "x.yaml", "drop"}, {"run", "extra"}} {
		if code, _, _ := runMain(t, "", args...); code != 2 {
			t.Errorf("outpost %v: exit %d, want 2", args, code)
		}
	}
	if code, out, _ := runMain(t, "", "version"); code != 0 || !strings.HasPrefix(out, "outpost ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestPasswdFromStdin(t *testing.T) {
	code, out, errs := runMain(t, "hunter2\n", "passwd")
	if code != 0 {
		t.Fatalf("passwd: exit %d: %s", code, errs)
	}
	hash := strings.TrimSpace(out)
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("hunter2")) != nil {
		t.Fatalf("printed hash %q does not match the password", hash)
	}
	if code, _, _ := runMain(t, "\n", "passwd"); code != 1 {
		t.Fatal("an empty password was accepted")
	}
}

// TestRunQueueStatsPeek runs the binary, publishes, stops it with SIGTERM
// (exit 0, queue closed cleanly), then inspects the queue offline.
func TestRunQueueStatsPeek(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	p := startOutpost(t, cfg)

	// While outpost runs, the queue file is locked: the offline tools say so.
	if code, _, stderr := runMain(t, "", "queue", "-c", cfg, "stats"); code != 1 || !strings.Contains(stderr, "stop outpost first") {
		t.Fatalf("queue stats while running: exit %d, %s", code, stderr)
	}

	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("pub"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for _, m := range []struct{ topic, payload string }{{"sensors/a/t", "21.5"}, {"local/x", "not queued"}, {"sensors/b/t", "22.0"}} {
		if tok := c.Publish(m.topic, 1, false, m.payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	c.Disconnect(100)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, p.logs)
	}
	if !strings.Contains(p.logs.String(), "outpost stopped cleanly") {
		t.Fatalf("no clean stop in the log:\n%s", p.logs)
	}

	code, stdout, stderr := runMain(t, "", "queue", "-c", cfg, "stats")
	if code != 0 {
		t.Fatalf("queue stats: %d %s", code, stderr)
	}
	for _, want := range []string{"messages:  2\n", "last_seq:  2\n", "queue_full=0 max_age=0 corrupt=0", "cloud", "true"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stats output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runMain(t, "", "queue", "-c", cfg, "peek", "5")
	if code != 0 {
		t.Fatalf("queue peek: %d %s", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^1\s+\d{4}-\d\d-\d\dT\S+Z\s+1\s+4\s+cloud\s+sensors/a/t$`).MatchString(stdout) ||
		!regexp.MustCompile(`(?m)^2\s+\S+\s+1\s+4\s+cloud\s+sensors/b/t$`).MatchString(stdout) {
		t.Fatalf("peek output:\n%s", stdout)
	}

	// The clean stop left the file marked closed: it opens without a check.
	q, err := storage.OpenReadOnly(filepath.Join(dir, "data", "queue.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
}

// TestRunDefaultConfig runs `outpost run` with no -c: the embedded default
// config, a broker on 127.0.0.1:1883 with data in ./outpost-data.
func TestRunDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "run")
	cmd.SysProcAttr = dieWithTest()
	cmd.Dir = dir
	var logs bridgetest.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "outpost running") {
		if strings.Contains(logs.String(), "address already in use") {
			t.Skip("127.0.0.1:1883 is in use on this machine; the default config cannot listen")
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "listeners=127.0.0.1:1883") {
		t.Fatalf("default listener:\n%s", logs.String())
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://127.0.0.1:1883").SetClientID("default"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(0)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "outpost-data", "queue.db")); err != nil {
		t.Fatalf("default data dir: %v", err)
	}
}

// TestRunCorruptQueue: a corrupt queue file is moved aside, logged loudly,
// and outpost serves on an empty queue instead of refusing to start.
func TestRunCorruptQueue(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(filepath.Join(dir, "data", "queue.db"), bytes.Repeat([]byte("not a queue "), 2000), 0o600)
	p := startOutpost(t, cfg)
	if !strings.Contains(p.logs.String(), "QUEUE FILE CORRUPT") {
		t.Fatalf("no loud log line:\n%s", p.logs)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "data", "queue.db.corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("corrupt file not kept: %v", aside)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("pub"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := c.Publish("sensors/x", 1, false, "after"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish after recovery: %v", tok.Error())
	}
	c.Disconnect(0)
}

// TestRunRefusesBadConfig: nothing starts, every problem is listed.
func TestRunRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("listeners: []\nqueue: {sync: sometimes}\n"), 0o600)
	out, err := exec.Command(binary, "run", "-c", path).CombinedOutput()
	if err == nil {
		t.Fatal("outpost run accepted a bad config")
	}
	if !strings.Contains(string(out), "bad.yaml:1: ") || !strings.Contains(string(out), "bad.yaml:2: ") || strings.Contains(string(out), "outpost running") {
		t.Fatalf("output:\n%s", out)
	}
}

// TestSIGHUPReload: SIGHUP with a bad edit to the real binary's config is
// refused, every problem logged as file:line: message, and the running
// config keeps serving (a publish after it is acknowledged and queued); a
// good edit is applied, and what cannot change while running is named.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	p := startOutpost(t, cfg)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("pub").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	publish := func(c paho.Client, topic string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v\n%s", topic, tok.Error(), p.logs)
		}
	}
	publish(c, "sensors/before")

	// Seven problems, more than the log's burst of five alike lines; and
	// anonymous: false, which would refuse these clients if any of it
	// were applied.
	bad := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
log: {level: debug}
listeners:
  - {name: sensors, type: udp, address: "127.0.0.1:0"}
auth: {anonymous: false}
queue:
  max_size: lots
  when_full: panic
  sync: sometimes
  max_age: forever
colour: blue
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	problemRE := regexp.MustCompile(`(?m)^.*level=ERROR msg="reload refused.* problem="[^"]*outpost\.yaml:(\d+): .*$`)
	wantLines := []string{"5", "6", "8", "9", "10", "11", "12"}
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		lines = lines[:0]
		for _, m := range problemRE.FindAllStringSubmatch(p.logs.String(), -1) {
			lines = append(lines, m[1])
		}
		if len(lines) >= len(wantLines) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Equal(lines, wantLines) {
		t.Fatalf("reload refused with problems on lines %v, want %v:\n%s", lines, wantLines, p.logs)
	}
	// The running config serves as before: the connected client's publish
	// is acknowledged, and a new anonymous client connects and publishes.
	publish(c, "sensors/after-bad")
	c2 := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.addr).SetClientID("pub2").SetAutoReconnect(false))
	if tok := c2.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting after the refused reload: %v", tok.Error())
	}
	publish(c2, "sensors/new-client")
	c2.Disconnect(0)
	if strings.Contains(p.logs.String(), "config reloaded") {
		t.Fatalf("the bad config was applied:\n%s", p.logs)
	}

	// A good edit with a new log level is applied.
	writeConfig(t, dir, "")
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte("level: info"), []byte("level: debug"), 1)
	os.WriteFile(cfg, append(b, "queue: {max_age: 1h}\n"...), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")
	// What cannot change while running is named, and keeps running as it was.
	waitLog(t, p, "applied=log.level restart_needed=queue")
	c.Disconnect(100)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
	// Everything acknowledged around the refused reload was queued.
	code, stdout, stderr := runMain(t, "", "queue", "-c", cfg, "stats")
	if code != 0 || !strings.Contains(stdout, "messages:  3\n") {
		t.Fatalf("queue stats: exit %d, want 3 messages:\n%s%s", code, stdout, stderr)
	}
}

func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
