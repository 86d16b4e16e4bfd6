package route_test

import (
	"fmt"

	"github.com/outpost-edge/outpost/bridge/route"
)

func Example() {
	// Which bridges want this message?
	tab, err := route.NewTable([]route.Entry{
		{Bridge: 0, Filter: "sensors/#"},           // cloud
		{Bridge: 1, Filter: "sensors/+/telemetry"}, // lake
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%02b\n", tab.Match("sensors/pump-1/telemetry"))
	fmt.Printf("%02b\n", tab.Match("sensors/pump-1/status"))

	// Where does it go upstream?
	to, err := route.ParseTemplate("site/{gateway_id}/{2...}")
	if err != nil {
		panic(err)
	}
	fmt.Println(to.Expand("sensors/pump-1/telemetry", "pi-0001"))

	fmt.Println(route.Match("#", "$SYS/uptime"), route.Match("a/#", "a"))
	// Output:
	// 11
	// 01
	// site/pi-0001/pump-1/telemetry
	// false true
}
