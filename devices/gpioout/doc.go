// Package gpioout drives a digital output, typically a status LED the field
// technician looks at, from the gateway's state: off, on, or blinking.
//
// References:
//   - BCM2835 ARM Peripherals, "General Purpose I/O" (outputs are 3.3 V,
//     a few mA per pin: drive an LED through a resistor, anything bigger
//     through a transistor):
//     https://datasheets.raspberrypi.com/bcm2835/bcm2835-peripherals.pdf
//   - Linux GPIO character device:
//     https://docs.kernel.org/userspace-api/gpio/chardev.html
//
// Run polls the state every period and sets the pin; blinking toggles the
// pin each period. When Run returns, the pin is low, so that an LED that
// says "uplink up" does not stay lit after outpost has stopped.
package gpioout
