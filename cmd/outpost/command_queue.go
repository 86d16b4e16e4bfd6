package main

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// queueCommand inspects the queue file offline: stats or peek [N].
func queueCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("queue", stderr)
	path := fs.String("c", "", "config file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	rest := fs.Args()
	if *path == "" || len(rest) == 0 || (rest[0] != "stats" && rest[0] != "peek") || len(rest) > 2 || (rest[0] == "stats" && len(rest) > 1) {
		fmt.Fprint(stderr, "outpost queue: want -c FILE stats, or -c FILE peek [N]\n\n", usage)
		return errUsage
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		printConfigError(stderr, err)
		return errReported
	}
	q, err := storage.OpenReadOnly(queuePath(cfg), storage.Options{Bridges: cfg.BridgeNames()})
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("%s is in use: stop outpost first (outpost_queue_* metrics show the same while it runs)", queuePath(cfg))
	}
	if err != nil {
		return err
	}
	defer q.Close()
	st, err := q.Stats()
	if err != nil {
		return err
	}
	if rest[0] == "stats" {
		printStats(stdout, queuePath(cfg), st)
		return nil
	}
	n := 10
	if len(rest) == 2 {
		if n, err = strconv.Atoi(rest[1]); err != nil || n < 1 {
			return fmt.Errorf("peek: %q is not a positive number", rest[1])
		}
	}
	msgs, err := q.Peek(n)
	if err != nil {
		return err
	}
	names := map[int]string{}
	for _, b := range st.Bridges {
		if qb, err := q.Bridge(b.Name); err == nil {
			names[bits.TrailingZeros64(qb.Mask())] = b.Name
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tRECEIVED_AT\tQOS\tSIZE\tBRIDGES\tTOPIC")
	for _, m := range msgs {
		var bs []string
		for mask := m.Bridges; mask != 0; mask &= mask - 1 {
			i := bits.TrailingZeros64(mask)
			name := names[i]
			if name == "" {
				name = "#" + strconv.Itoa(i)
			}
			bs = append(bs, name)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", m.Seq, m.ReceivedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			m.QoS, len(m.Payload), strings.Join(bs, ","), m.Topic)
	}
	return tw.Flush()
}

func printStats(w io.Writer, path string, st storage.Stats) {
	fmt.Fprintf(w, "file:      %s", path)
	if fi, err := os.Stat(path); err == nil {
		fmt.Fprintf(w, " (%s on disk)", humanBytes(uint64(fi.Size())))
	}
	fmt.Fprintf(w, "\nmessages:  %d\nbytes:     %d (%s)\nlast_seq:  %d\n", st.Messages, st.Bytes, humanBytes(st.Bytes), st.LastSeq)
	if st.Oldest.IsZero() {
		fmt.Fprintln(w, "oldest:    -")
	} else {
		fmt.Fprintf(w, "oldest:    %s (%s ago)\n", st.Oldest.UTC().Format(time.RFC3339), time.Since(st.Oldest).Round(time.Second))
	}
	fmt.Fprintf(w, "dropped:   queue_full=%d max_age=%d corrupt=%d\n",
		st.Dropped[storage.ReasonQueueFull], st.Dropped[storage.ReasonMaxAge], st.Dropped[storage.ReasonCorrupt])
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BRIDGE\tPOSITION\tPENDING\tCONFIGURED")
	for _, b := range st.Bridges {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\n", b.Name, b.Position, b.Pending, b.Configured)
	}
	tw.Flush()
}
