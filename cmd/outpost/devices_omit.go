//go:build outpost_omit_devices

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/cmd/outpost/internal/web"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// hasDevices reports whether this build runs wired devices; this one was
// built with -tags outpost_omit_devices.
const hasDevices = false

type noDevices struct{}

// startDevices refuses a config with devices, which this build cannot run.
func startDevices(_ context.Context, cfg *configs.Config, _ *broker.Broker, _ *storage.Queue,
	_ func() []bridge.Stats, _ *slog.Logger) (*noDevices, func(), error) {
	if len(cfg.Devices) > 0 {
		return nil, nil, errors.New("the config has devices, but this outpost was built without device support (-tags outpost_omit_devices)")
	}
	return nil, func() {}, nil
}

func deviceRows(*noDevices) func() []web.Device { return nil }
