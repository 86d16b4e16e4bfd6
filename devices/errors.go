package devices

import "errors"

var (
	// ErrUnknownDriver means a device's driver is not one this package runs.
	ErrUnknownDriver = errors.New("devices: unknown driver")
	// ErrNoPin means the host has no GPIO pin of that name.
	ErrNoPin = errors.New("devices: no such GPIO pin")
	// ErrNoPublisher means devices that publish were configured without a
	// Publisher.
	ErrNoPublisher = errors.New("devices: no publisher")
)
