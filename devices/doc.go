// Package devices runs the sensors and outputs wired to the gateway itself
// (the devices section of the config) and publishes their readings into the
// local broker, where they take the same routes and the same durable queue
// as a sensor's message.
//
// One package per device family does the bus work: bmx280 (BME280/BMP280
// over I²C), ads1115 (4-channel ADC over I²C, with a linear scale to
// engineering units), gpioin (a debounced digital input) and gpioout (a
// status output). This package builds them from the config and runs them:
//
//   - Polled drivers (bme280, bmp280, ads1115, gpio_in with edge: none) read
//     on a deadline-based schedule: every `every` from the start, skipping
//     slots that a slow read overran rather than bunching them up.
//   - With only_on_change, a reading is published only when a value moved
//     by more than deadband from the last published one (deadband compares
//     in the value's unit; gpio levels change by 1). An ads1115 channel
//     compares its own value only, in the channel's unit, not the
//     input_voltage published with it.
//   - gpio_in with an edge publishes its level at start and on every
//     debounced change.
//   - gpio_out shows "bridge:<name>" (on while that bridge is connected) or
//     "queue:backlog" (on while messages wait; blinking while messages are
//     being dropped), read through functions that cmd hands in.
//   - A device that fails (unplugged, bus error, wrong chip id) is closed,
//     counted (Stats.Errors: outpost_device_errors_total{device}), logged
//     at warn (the process logger rate-limits warnings), and opened again
//     after a backoff (1s doubling to 1m, no jitter: a local bus has no
//     thundering herd, and fixed retry times keep the tests exact). The
//     other devices and the rest of outpost go on.
//   - periph.io's host drivers are initialised on the first device opened:
//     a gateway without devices never touches /dev/i2c-*, /dev/gpiochip* or
//     /sys/class/gpio.
//
// This package imports neither broker, bridge nor storage: it publishes
// through Publisher and reads the gateway state through Options functions.
//
// # Payload
//
// Every reading is one MQTT message, a JSON object:
//
//	{"device":"enclosure","time":"2025-11-25T09:30:00.026Z",
//	 "values":{"humidity":{"value":42.14,"unit":"%RH"},
//	           "pressure":{"value":1006.53,"unit":"hPa"},
//	           "temperature":{"value":25.08,"unit":"°C"}}}
//
// time is when the reading was taken (RFC 3339, UTC, milliseconds). Each
// value has the unit it is in. bme280 publishes temperature (°C), pressure
// (hPa) and humidity (%RH) on topic; bmp280 the same without humidity. An
// ads1115 channel is published on topic/<channel name>, with its value in
// the channel's unit and, when it has a scale, the measured input_voltage
// (V). gpio_in publishes {"level":{"value":1}} (1 high, 0 low).
package devices
