package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The config the .deb installs as /etc/outpost/outpost.yaml passes `outpost
// check` (the unit's ExecStartPre), in process and as the real binary, and
// is the safe first-start config it promises: local clients only, the queue
// in the unit's StateDirectory.
func TestDebExampleConfig(t *testing.T) {
	const path = "../../build/outpost.yaml"
	code, stdout, stderr := runMain(t, "", "check", "-c", path)
	if code != 0 {
		t.Fatalf("outpost check -c %s: exit %d\n%s%s", path, code, stdout, stderr)
	}
	for _, want := range []string{
		"data_dir:   /var/lib/outpost\n",
		"listener:   local tcp on 127.0.0.1:1883\n",
		"fsync before every ack",
		path + ": ok\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "0.0.0.0") || strings.Contains(stdout, "bridge:") {
		t.Errorf("the packaged config should listen locally only and have no bridges:\n%s", stdout)
	}
	out, err := exec.Command(binary, "check", "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s check -c %s: %v\n%s", binary, path, err, out)
	}
}
