#!/bin/sh
# ARM binaries under qemu-user-static (`make qemu-check`, after build-pi):
# each one prints its version, checks the packaged config and every
# configs/examples file, runs a broker with a bridge (queue opened on
# disk, listener bound) until SIGTERM, which must end it cleanly, and reads
# its queue back offline. qemu emulates the oldest CPU each build is for:
# the armv6 binary runs on an ARM1176 (Pi Zero, Pi 1), where an armv7
# instruction is an illegal instruction, so this also proves GOARM=6 clean.
# Without qemu a binary is skipped with a one-line reason, unless
# OUTPOST_QEMU_REQUIRED=1 (CI sets it): then a missing qemu is a failure,
# so that the check cannot pass without having run anything.
set -eu
cd "$(dirname "$0")/.."

configs="build/outpost.yaml $(ls configs/examples/*.yaml)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

for t in armv6:qemu-arm-static:arm1176 armv7:qemu-arm-static:cortex-a7 arm64:qemu-aarch64-static:cortex-a53; do
	bin=dist/outpost-linux-${t%%:*}
	rest=${t#*:}
	qemu=${rest%%:*}
	cpu=${rest#*:}
	if ! command -v "$qemu" >/dev/null; then
		if [ "${OUTPOST_QEMU_REQUIRED:-}" = 1 ]; then
			echo "FAIL $bin: $qemu not installed (Debian package qemu-user-static) and OUTPOST_QEMU_REQUIRED=1"
			status=1
			continue
		fi
		echo "SKIP $bin: $qemu not installed (Debian package qemu-user-static)"
		continue
	fi
	[ -x "$bin" ] || { echo "FAIL $bin: missing (make build-pi)"; exit 1; }
	q="$qemu -cpu $cpu"
	echo "== $q $bin"
	$q "$bin" version

	for c in $configs; do
		if ! $q "$bin" check -c "$c" >"$tmp/check.out" 2>&1; then
			echo "FAIL $bin check -c $c:"; cat "$tmp/check.out"; status=1
		else
			echo "check $c: ok"
		fi
	done

	d="$tmp/${t%%:*}"
	mkdir -p "$d"
	cat >"$d/outpost.yaml" <<-YAML
	gateway_id: qemu-${t%%:*}
	data_dir: $d/data
	listeners:
	  - {name: local, type: tcp, address: "127.0.0.1:0"}
	auth: {anonymous: true}
	bridges:
	  - name: cloud
	    mqtt: {url: "tcp://127.0.0.1:1"}
	    forward:
	      - {from: "sensors/#", to: "site/{topic}", qos: 1}
	YAML
	$q "$bin" run -c "$d/outpost.yaml" 2>"$d/log" &
	pid=$!
	i=0
	until grep -q "outpost running" "$d/log"; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
			echo "FAIL $bin run: not running after 30s:"; cat "$d/log"; kill -KILL $pid 2>/dev/null || true; exit 1
		fi
		sleep 0.1
	done
	kill -TERM $pid
	if wait $pid && grep -q "outpost stopped cleanly" "$d/log"; then
		echo "run, SIGTERM: stopped cleanly"
	else
		echo "FAIL $bin run: no clean stop after SIGTERM:"; cat "$d/log"; status=1
	fi
	if ! $q "$bin" queue -c "$d/outpost.yaml" stats >"$d/stats" 2>&1; then
		echo "FAIL $bin queue stats:"; cat "$d/stats"; status=1
	else
		echo "queue stats: ok"
	fi
done
exit $status
