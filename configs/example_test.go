package configs_test

import (
	"fmt"

	"github.com/outpost-edge/outpost/configs"
)

func ExampleParse() {
	_, err := configs.Parse("outpost.yaml", []byte(`
listeners:
  - {name: sensors, address: "0.0.0.0:1883"}
auth: {anonymous: true}
queue:
  max_size: 1GiB
  max_age: 7d
bridges:
  - name: cloud
    mqtt: {url: "tls://mqtt.example.com:8883", clientid: gw}
    forward: [{from: "sensors/#", to: "site/{gateway_id}/{0}"}]
`), nil)
	fmt.Println(err)
	// Output:
	// outpost.yaml:7: queue.max_age: invalid duration "7d" (want a number with a unit, such as 500ms, 30s, 2m or 1h)
	// outpost.yaml:10: unknown key "clientid" in bridges[0].mqtt (did you mean "client_id"?)
	// outpost.yaml:11: bridges[0].forward[0].to: bad template "site/{gateway_id}/{0}": levels count from 1, not 0, in {0}
}
