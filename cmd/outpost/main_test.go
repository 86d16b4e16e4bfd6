package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
)

// binary is the outpost binary built once for the tests that run it as a
// separate process (crash tests kill it with SIGKILL). OUTPOST_TEST_BINARY
// names one built elsewhere instead, to compare two builds (another
// commit's, say) in the same benchmark.
var binary string

func TestMain(m *testing.M) {
	if binary = os.Getenv("OUTPOST_TEST_BINARY"); binary != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "outpost-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "outpost")
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building outpost: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running outpost binary.
type proc struct {
	cmd  *exec.Cmd
	addr string // the first listener's address
	logs *bridgetest.Buffer
	done chan error
}

var listenersRE = regexp.MustCompile(`listeners=(\S+)`)

// startOutpost runs `outpost run -c cfgPath` and waits until it listens.
func startOutpost(t testing.TB, cfgPath string) *proc {
	t.Helper()
	p := &proc{logs: &bridgetest.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "run", "-c", cfgPath)
	p.cmd.SysProcAttr = dieWithTest()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := listenersRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "outpost running") {
				addr <- strings.Split(m[1], ",")[0]
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addr:
	case err := <-p.done:
		t.Fatalf("outpost exited before listening: %v\n%s", err, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("outpost did not start listening:\n%s", p.logs)
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// stop sends sig and returns the exit error.
func (p *proc) stop(t testing.TB, sig os.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("outpost did not exit after %v:\n%s", sig, p.logs)
		return nil
	}
}

// writeConfig writes a config with one tcp listener on a free loopback port,
// data in dir, and one MQTT bridge "cloud" forwarding sensors/#. Its upstream
// is not reached in these tests: the queue keeps everything.
func writeConfig(t testing.TB, dir, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`gateway_id: test-gw
data_dir: %s
log: {level: info}
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth: {anonymous: true}
bridges:
  - name: cloud
    mqtt: {url: "tcp://127.0.0.1:1"}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}
%s`, filepath.Join(dir, "data"), extra)
	path := filepath.Join(dir, "outpost.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dieWithTest makes a child process get SIGKILL when the test process dies,
// even when go test's timeout kills it: an orphaned publisher that keeps
// reconnecting would otherwise publish into whatever later listens on its
// port.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
