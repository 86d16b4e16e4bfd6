package build

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// unit is a parsed systemd unit file: section -> key -> values in order (a
// key may repeat, as DeviceAllow= does; an empty assignment resets it).
type unit map[string]map[string][]string

// parseUnit reads systemd's unit syntax (systemd.syntax(7)): [Section]
// headers, Key=Value lines, '#' and ';' comments, '\' continuations.
func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		for strings.HasSuffix(line, `\`) && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("outpost.service:%d: not Key=Value in a section: %q", n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				u[section][k] = []string{""} // reset; kept so that "set empty" is visible
			} else {
				u[section][k] = append(u[section][k], v)
			}
		}
	}
	return u
}

// one returns the single value of section.key, failing when it is unset or
// repeated.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs, ok := u[section][key]
	if !ok || len(vs) != 1 {
		t.Errorf("[%s] %s=: want exactly one value, got %q", section, key, vs)
		return ""
	}
	return vs[0]
}

func readUnit(t *testing.T) unit {
	t.Helper()
	data, err := os.ReadFile("outpost.service")
	if err != nil {
		t.Fatal(err)
	}
	return parseUnit(t, data)
}

// The unit keeps the promises of issue 7 and the README: Type=notify with a
// watchdog, the queue in StateDirectory=outpost, restart on failure, the
// outpost user, and sandboxing that still reaches I2C and GPIO devices.
func TestUnitPromises(t *testing.T) {
	u := readUnit(t)
	s := "Service"
	for _, c := range []struct{ section, key, want string }{
		{s, "Type", "notify"},
		{s, "NotifyAccess", "main"},
		{s, "Restart", "on-failure"},
		{s, "StateDirectory", "outpost"},
		{s, "User", "outpost"},
		{s, "Group", "outpost"},
		{s, "ExecStart", "/usr/bin/outpost run -c /etc/outpost/outpost.yaml"},
		{s, "ExecStartPre", "/usr/bin/outpost check -c /etc/outpost/outpost.yaml"},
		{s, "ExecReload", "/bin/kill -HUP $MAINPID"},
		{s, "KillSignal", "SIGTERM"},
		{s, "DevicePolicy", "closed"},
		{s, "ProtectSystem", "strict"},
		{s, "NoNewPrivileges", "true"},
		{s, "PrivateTmp", "true"},
		{s, "ProtectHome", "true"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.one(t, c.section, c.key); got != c.want {
			t.Errorf("[%s] %s=%s, want %s", c.section, c.key, got, c.want)
		}
	}
	// A watchdog, long enough for a Pi Zero's SD card fsync under load.
	if wd := u.one(t, s, "WatchdogSec"); !regexp.MustCompile(`^[1-9][0-9]*(s|min)$`).MatchString(wd) || wd == "1s" || wd == "5s" {
		t.Errorf("WatchdogSec=%s: want a watchdog of at least 10s", wd)
	}
	// Devices: the cgroup device policy lets through exactly the wired
	// sensor classes, and nothing hides /dev.
	allow := u[s]["DeviceAllow"]
	for _, want := range []string{"char-i2c rw", "char-gpiochip rw"} {
		if !slices.Contains(allow, want) {
			t.Errorf("DeviceAllow=%s missing (have %q)", want, allow)
		}
	}
	if v := u[s]["PrivateDevices"]; len(v) > 0 && v[len(v)-1] != "false" && v[len(v)-1] != "no" {
		t.Errorf("PrivateDevices=%s hides /dev/i2c-* and /dev/gpiochip*", v[len(v)-1])
	}
	// SupplementaryGroups= naming a group the system lacks (i2c, gpio on a
	// generic Debian) stops the unit from starting: postinst adds the user
	// to the groups that exist instead.
	if v, ok := u[s]["SupplementaryGroups"]; ok {
		t.Errorf("SupplementaryGroups=%q: a missing group stops the unit; postinst joins the groups that exist", v)
	}
	// No way to regain privileges: an empty capability set.
	if v := u[s]["CapabilityBoundingSet"]; len(v) != 1 || v[0] != "" {
		t.Errorf("CapabilityBoundingSet=%q, want empty", v)
	}
	if v := u[s]["RestrictAddressFamilies"]; len(v) != 1 || !strings.Contains(v[0], "AF_UNIX") {
		t.Errorf("RestrictAddressFamilies=%q must allow AF_UNIX, for $NOTIFY_SOCKET", v)
	}
	if after := u.one(t, "Unit", "After"); !strings.Contains(after, "network-online.target") {
		t.Errorf("After=%s: want network-online.target", after)
	}
}

// The unit, the packaged config and the package agree on paths.
func TestUnitMatchesPackage(t *testing.T) {
	u := readUnit(t)
	cfg, err := os.ReadFile("outpost.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^data_dir: /var/lib/` + regexp.QuoteMeta(u.one(t, "Service", "StateDirectory")) + `\s`).Match(cfg) {
		t.Errorf("build/outpost.yaml's data_dir is not the unit's StateDirectory (/var/lib/outpost)")
	}
	nfpm, err := os.ReadFile("nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"src: build/outpost.service\n    dst: /usr/lib/systemd/system/outpost.service\n",
		"src: build/outpost.yaml\n    dst: /etc/outpost/outpost.yaml\n    type: config\n",
		"dst: /usr/bin/outpost\n",
	} {
		if !strings.Contains(string(nfpm), want) {
			t.Errorf("nfpm.yaml lacks %q", want)
		}
	}
}

// systemd's own reading of the unit: `systemd-analyze verify` (unknown keys,
// bad values, missing executables) and the offline security score.
func TestUnitSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): the unit is checked by TestUnitPromises only")
	}
	// verify checks that ExecStart's program exists: point it at a stand-in.
	dir := t.TempDir()
	stub := filepath.Join(dir, "outpost")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("outpost.service")
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(dir, "outpost.service")
	if err := os.WriteFile(unitPath, bytes.ReplaceAll(data, []byte("/usr/bin/outpost"), []byte(stub)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", unitPath).CombinedOutput()
	t.Logf("systemd-analyze verify:\n%s", out)
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on an unknown key or a bad value, which it only logs.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "outpost.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	// Exposure (0 safest .. 10): fail above 2.0, where ours is about 1.8.
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", unitPath).CombinedOutput()
	if bytes.Contains(out, []byte("unrecognized option")) || bytes.Contains(out, []byte("Unknown option")) {
		t.Logf("this systemd-analyze has no offline security check: %s", bytes.TrimSpace(out))
		return
	}
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	} else if m := regexp.MustCompile(`Overall exposure level for \S+: (\S+ \S+)`).FindSubmatch(out); m != nil {
		t.Logf("systemd-analyze security: %s", m[1])
	}
}
