package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Installing the package for this machine's architecture with dpkg, as a
// technician would, then purging it. It changes the system (a package, the
// outpost user), so it runs only with OUTPOST_DEB_INSTALL=1 (`make
// deb-install-check`, which CI runs as root), and never over an outpost
// package that is already installed.
func TestDebInstall(t *testing.T) {
	if os.Getenv("OUTPOST_DEB_INSTALL") != "1" {
		t.Skip("installs a package system-wide: set OUTPOST_DEB_INSTALL=1 (make deb-install-check)")
	}
	if os.Geteuid() != 0 {
		t.Skip("dpkg -i needs root")
	}
	if err := exec.Command("dpkg", "-s", "outpost").Run(); err == nil {
		t.Skip("an outpost package is installed already; not replacing it")
	}
	arch := map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armhf"}[runtime.GOARCH]
	deb, err := filepath.Abs(debFile(t, arch))
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Logf("%s", run("dpkg", "-i", deb))
	t.Cleanup(func() {
		out, err := exec.Command("dpkg", "--purge", "outpost").CombinedOutput()
		if err != nil {
			t.Errorf("dpkg --purge outpost: %v\n%s", err, out)
		}
		for _, p := range []string{"/usr/bin/outpost", "/etc/outpost", "/var/lib/outpost", "/usr/lib/systemd/system/outpost.service"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s left after purge", p)
			}
		}
	})

	if st := run("dpkg-query", "-W", "-f", "${Status}", "outpost"); st != "install ok installed" {
		t.Errorf("dpkg status %q", st)
	}
	// The system user postinst created: no login, home = the state dir.
	pw := strings.Split(strings.TrimSpace(run("getent", "passwd", "outpost")), ":")
	if len(pw) != 7 || pw[5] != "/var/lib/outpost" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("outpost user: %q", pw)
	}
	if uid, err := strconv.Atoi(strings.TrimSpace(run("id", "-u", "outpost"))); err != nil || uid == 0 || uid >= 1000 {
		t.Errorf("outpost uid %d is not a system uid (%v)", uid, err)
	}
	for _, g := range []string{"i2c", "gpio"} {
		if exec.Command("getent", "group", g).Run() == nil && !strings.Contains(" "+run("id", "-nG", "outpost"), " "+g) {
			t.Errorf("outpost is not in group %s, which exists here", g)
		}
	}
	// The config is readable by group outpost only, and the service's user
	// can check it (the unit's ExecStartPre).
	if out := strings.TrimSpace(run("stat", "-c", "%a %U:%G", "/etc/outpost/outpost.yaml")); out != "640 root:outpost" {
		t.Errorf("/etc/outpost/outpost.yaml: %s, want 640 root:outpost", out)
	}
	if out := run("runuser", "-u", "outpost", "--", "/usr/bin/outpost", "check", "-c", "/etc/outpost/outpost.yaml"); !strings.Contains(out, ": ok") {
		t.Errorf("outpost check as the outpost user:\n%s", out)
	}
	if out := run("/usr/bin/outpost", "version"); !strings.HasPrefix(out, "outpost ") {
		t.Errorf("outpost version: %q", out)
	}
	if out := run("dpkg-query", "-W", "-f", "${Conffiles}", "outpost"); !strings.Contains(out, "/etc/outpost/outpost.yaml") {
		t.Errorf("dpkg conffiles: %q", out)
	}
	// Reinstalling keeps the user and an edited config (conffile).
	edited := []byte("# edited by a technician\n")
	orig, _ := os.ReadFile("/etc/outpost/outpost.yaml")
	os.WriteFile("/etc/outpost/outpost.yaml", append(edited, orig...), 0o640)
	run("dpkg", "--force-confold", "-i", deb)
	if got, _ := os.ReadFile("/etc/outpost/outpost.yaml"); !strings.HasPrefix(string(got), string(edited)) {
		t.Errorf("reinstall replaced the edited config")
	}
}
