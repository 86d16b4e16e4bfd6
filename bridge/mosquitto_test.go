package bridge

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// mosquittoPath finds the mosquitto broker binary (Debian puts it in /usr/sbin).
func mosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// TestMosquittoUpstream forwards a backlog to the real mosquitto broker.
func TestMosquittoUpstream(t *testing.T) {
	bin := mosquittoPath()
	if bin == "" {
		t.Skip("mosquitto not installed (apt-get install mosquitto)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	// mosquitto queues at most 1000 messages for a subscriber by default and
	// drops the rest: lift that, so that a slow consumer (-race) sees all.
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"max_queued_messages 0\nmax_queued_bytes 0\n", port)), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var mu sync.Mutex
	var got []string
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("consumer").SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to mosquitto: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	sub.Subscribe("site/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, string(m.Payload()))
		mu.Unlock()
	}).Wait()

	q, qb := openQueue(t)
	const n = 5000
	enqueue(t, q, qb.Mask(), 0, n, 1)
	runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(cloudBridge, addr)), GatewayID: "gw-1", Queue: qb})
	waitUntil(t, 2*time.Minute, "every message at mosquitto", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n })
	waitUntil(t, 10*time.Second, "queue drained", func() bool { return qb.Pending() == 0 })
	mu.Lock()
	defer mu.Unlock()
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: order or completeness broken", i, p)
		}
	}
}
