package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/configs"
)

func TestRateLimitedLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	h := newRateLimited(slog.NewTextHandler(&buf, nil), 3, 10*time.Second)
	h.now = func() time.Time { return now }
	log := slog.New(h).With("component", "queue")
	for range 10 {
		log.Warn("dropped", "n", 1)
		log.Info("routine")
	}
	log.Warn("other message")
	if got := strings.Count(buf.String(), "msg=dropped"); got != 3 {
		t.Fatalf("%d 'dropped' lines in one window, want 3:\n%s", got, buf.String())
	}
	if strings.Count(buf.String(), "msg=routine") != 10 || !strings.Contains(buf.String(), "other message") {
		t.Fatalf("info lines or other messages were limited:\n%s", buf.String())
	}
	// Records of a context marked for every line pass the limit, and do not
	// count against it.
	for range 5 {
		log.WarnContext(logEveryLine(t.Context()), "dropped", "n", 2)
	}
	if got := strings.Count(buf.String(), "msg=dropped component=queue n=2"); got != 5 {
		t.Fatalf("%d of 5 lines marked for every line were written:\n%s", got, buf.String())
	}
	buf.Reset()
	now = now.Add(11 * time.Second)
	log.Warn("dropped", "n", 1)
	if !strings.Contains(buf.String(), "suppressed=7") {
		t.Fatalf("first line of the next window must count the held ones:\n%s", buf.String())
	}
}

// TestNewLogger: log.format json writes one JSON object per line, with
// level and msg; text is not JSON. log.level decides whether debug lines
// appear, and a reload's level (the LevelVar) takes effect at once.
func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		format, level string
		json, debug   bool
	}{
		{"json", "debug", true, true},
		{"json", "info", true, false},
		{"text", "debug", false, true},
		{"text", "info", false, false},
	} {
		t.Run(tc.format+"-"+tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			level := new(slog.LevelVar)
			log := newLogger(&buf, configs.Log{Level: tc.level, Format: tc.format}, level)
			log.Debug("debug line", "n", 1)
			log.Info("info line", "component", "queue")
			log.Warn("warn line", "error", `quoted "text"`)
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			want := []string{"info line", "warn line"}
			if tc.debug {
				want = append([]string{"debug line"}, want...)
			}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d (%v):\n%s", len(lines), len(want), want, buf.String())
			}
			for i, line := range lines {
				var rec map[string]any
				err := json.Unmarshal([]byte(line), &rec)
				if !tc.json {
					if err == nil {
						t.Errorf("text format wrote JSON: %s", line)
					}
					if !strings.Contains(line, "msg=\""+want[i]+"\"") {
						t.Errorf("text line %q lacks msg=%q", line, want[i])
					}
					continue
				}
				if err != nil {
					t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
				}
				if rec["msg"] != want[i] || rec["level"] == nil || rec["time"] == nil {
					t.Errorf("line %d: %v, want msg %q with level and time", i+1, rec, want[i])
				}
			}
			if tc.json {
				var rec map[string]any
				json.Unmarshal([]byte(lines[len(lines)-1]), &rec)
				if rec["level"] != "WARN" || rec["error"] != `quoted "text"` {
					t.Errorf("warn line: %v", rec)
				}
			}

			// A reload to debug (reload sets the LevelVar) shows debug lines.
			buf.Reset()
			level.Set(slog.LevelDebug)
			log.Debug("after reload")
			if !strings.Contains(buf.String(), "after reload") {
				t.Errorf("no debug line after the level changed to debug: %q", buf.String())
			}
		})
	}
}

// TestRunLogFormatJSON: with log.format json, every line the real binary
// writes, the broker's included, is a JSON object with level and msg.
func TestRunLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("log: {level: info}"), []byte("log: {level: info, format: json}"), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "-c", path)
	cmd.SysProcAttr = dieWithTest()
	var logs bridgetest.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), `"msg":"outpost running"`); {
		if time.Now().After(deadline) {
			t.Fatalf("did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	components := map[any]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if _, ok := rec["level"].(string); !ok {
			t.Errorf("line %d has no level: %s", i+1, line)
		}
		if m, _ := rec["msg"].(string); m == "" {
			t.Errorf("line %d has no msg: %s", i+1, line)
		}
		components[rec["component"]] = true
	}
	if !components["mqtt"] || !strings.Contains(logs.String(), `"msg":"outpost stopped cleanly"`) {
		t.Errorf("want the broker's lines and the clean stop, in JSON:\n%s", logs.String())
	}
}
