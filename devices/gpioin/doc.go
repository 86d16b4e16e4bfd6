// Package gpioin watches a digital input, such as a door contact or a float
// switch, on a GPIO pin: by edge (the kernel's edge detection, debounced in
// software) or by reading its level on demand.
//
// References:
//   - Linux GPIO character device (what periph uses on current Raspberry Pi
//     OS; /sys/class/gpio is deprecated and gone from Bookworm kernels):
//     https://docs.kernel.org/userspace-api/gpio/chardev.html
//   - BCM2835 ARM Peripherals, "General Purpose I/O" (pull resistors,
//     event detection; inputs are 3.3 V only, never 5 V):
//     https://datasheets.raspberrypi.com/bcm2835/bcm2835-peripherals.pdf
//   - BCM2711 ARM Peripherals (Pi 4), "General Purpose I/O":
//     https://datasheets.raspberrypi.com/bcm2711/bcm2711-peripherals.pdf
//
// Notes:
//   - A mechanical contact bounces for a few milliseconds; Debounce must be
//     longer than that (20–50 ms is typical). A change is reported once the
//     pin has been quiet for Debounce, and only if the level differs from
//     the last one reported, so a glitch shorter than Debounce that returns
//     to the same level reports nothing.
//   - The pin is always configured for both edges, whatever Edge asks, so that
//     the debounce sees every transition; Edge only filters what is reported.
//   - periph's WaitForEdge means "forever" with -1 on some drivers and 0 on
//     the character-device driver (periph/host#78), and sysfs's Halt does not
//     wake it (periph/host#36): Next only ever waits with a finite timeout.
package gpioin
