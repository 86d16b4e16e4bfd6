package storage

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// smallDisk mounts a tmpfs of the given size in a temp dir, or skips.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestDiskFull is promise 6: a full disk makes the queue apply its
// when_full policy, the process goes on, and the file stays sound.
func TestDiskFull(t *testing.T) {
	for _, policy := range []FullPolicy{DropOldest, RejectNew} {
		t.Run(fmt.Sprint("policy=", policy), func(t *testing.T) {
			path := filepath.Join(smallDisk(t, "3m"), "queue.db")
			q, err := Open(path, Options{Bridges: []string{"b"}, WhenFull: policy})
			if err != nil {
				t.Fatal(err)
			}
			payload := make([]byte, 1000)
			var stored, refused int
			for i := range 8000 { // 8 MB into a 3 MiB disk
				tk, err := q.Enqueue(t.Context(), &Message{Topic: "t", Payload: payload, QoS: 1, Bridges: 1})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tk.Wait(t.Context()); errors.Is(err, ErrFull) {
					refused++
				} else if err != nil {
					t.Fatalf("message %d: %v (want stored or ErrFull)", i, err)
				} else {
					stored++
				}
			}
			st, _ := q.Stats()
			t.Logf("stored %d, refused %d, dropped %d, queue holds %d", stored, refused, st.Dropped[ReasonQueueFull], st.Messages)
			if policy == DropOldest {
				if st.Dropped[ReasonQueueFull] == 0 || uint64(stored) != st.Messages+st.Dropped[ReasonQueueFull] {
					t.Fatalf("drop_oldest: %d stored = %d held + %d dropped?", stored, st.Messages, st.Dropped[ReasonQueueFull])
				}
				if refused*20 > stored+refused {
					t.Fatalf("drop_oldest refused %d of %d: it must make room for new messages", refused, stored+refused)
				}
			} else {
				if refused == 0 || uint64(stored) != st.Messages || st.Rejected != uint64(refused) {
					t.Fatalf("reject_new: stored %d, held %d, refused %d, counted %d", stored, st.Messages, refused, st.Rejected)
				}
				// Once a bridge has forwarded the backlog, the space is reused.
				b, _ := q.Bridge("b")
				if err := b.Ack(st.LastSeq); err != nil {
					t.Fatalf("ack on a full disk: %v", err)
				}
				tk, _ := q.Enqueue(t.Context(), &Message{Topic: "t", Payload: payload, QoS: 1, Bridges: 1})
				if _, err := tk.Wait(t.Context()); err != nil {
					t.Fatalf("enqueue after the backlog drained: %v", err)
				}
			}
			if err := q.Close(); err != nil {
				t.Fatalf("Close on a full disk: %v", err)
			}
			checkFile(t, path)
			// And it opens again.
			q, err = Open(path, Options{Bridges: []string{"b"}})
			if err != nil {
				t.Fatalf("reopen after disk full: %v", err)
			}
			q.Close()
		})
	}
}
