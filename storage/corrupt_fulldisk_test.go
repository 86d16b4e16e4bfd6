package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestCorruptQueueOnFullDisk: a queue that once filled its disk keeps a
// file as big as the disk (bbolt does not shrink). When that file is found
// corrupt, moving it aside leaves no room for the new, empty queue; outpost
// must still start (promise 6), so the corrupt file gives way, loudly.
// Found by the field chaos test (cmd/outpost TestChaos).
func TestCorruptQueueOnFullDisk(t *testing.T) {
	path := filepath.Join(smallDisk(t, "3m"), "queue.db")
	q, err := Open(path, Options{Bridges: []string{"b"}, WhenFull: DropOldest})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	full := false
	for i := 0; i < 8000 && !full; i++ { // until the disk has been full once
		tk, err := q.Enqueue(t.Context(), &Message{Topic: "t", Payload: payload, QoS: 1, Bridges: 1})
		if err != nil {
			t.Fatal(err)
		}
		tk.Wait(t.Context())
		st, _ := q.Stats()
		full = st.Dropped[ReasonQueueFull] > 0
	}
	if !full {
		t.Fatal("the disk never filled")
	}
	q.Close()

	// Destroy both meta pages.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xA5}, 2*PageSize), 0)
	f.Close()

	var logs bytes.Buffer
	q, err = Open(path, Options{Bridges: []string{"b"}, Logger: newTestLogger(&logs)})
	if err != nil {
		t.Fatalf("Open of a corrupt queue on a full disk must start an empty queue, got %v\n%s", err, logs.String())
	}
	defer q.Close()
	if !bytes.Contains(logs.Bytes(), []byte("QUEUE FILE CORRUPT")) {
		t.Fatalf("no loud log line: %s", logs.String())
	}
	tk, err := q.Enqueue(t.Context(), &Message{Topic: "t", Payload: payload, QoS: 1, Bridges: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Wait(t.Context()); err != nil && !errors.Is(err, ErrFull) {
		t.Fatalf("enqueue after the restart: %v", err)
	} else if err != nil {
		t.Fatalf("the new queue has no room: %v\n%s", err, logs.String())
	}
}
