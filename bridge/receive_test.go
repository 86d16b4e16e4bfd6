package bridge

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/storage"
)

// TestReceiveRoute: a command published on the upstream broker reaches a
// subscriber of the local broker, on the topic the receive route maps it to.
func TestReceiveRoute(t *testing.T) {
	up := bridgetest.NewUpstream(t, "site/#")
	q, err := storage.Open(filepath.Join(t.TempDir(), "q.db"), storage.Options{Bridges: []string{"cloud"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	qb, _ := q.Bridge("cloud")
	local, err := broker.New(broker.Options{Listeners: []broker.Listener{{Name: "l", Type: "tcp", Address: "127.0.0.1:0"}}, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go local.Run(ctx)

	got := make(chan string, 1)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + local.Addrs()[0].String()).SetClientID("valve"))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	sub.Subscribe("commands/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) }).Wait()

	b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(`  - name: cloud
    mqtt: {url: "tcp://%s"}
    forward: [{from: "sensors/#"}]
    receive:
      - {from: "site/gw-1/commands/#", to: "commands/{4...}", qos: 1}
`, up.Addr)), GatewayID: "gw-1", Queue: qb, Local: local})
	waitUntil(t, 10*time.Second, "bridge up", func() bool { return b.Stats().Up })
	if err := up.Srv.Publish("site/gw-1/commands/pump-1/stop", []byte("now"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "commands/pump-1/stop now" {
			t.Fatalf("local subscriber got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command from upstream never reached the local subscriber")
	}
}
