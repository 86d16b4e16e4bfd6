package storage

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

const (
	stateVersion = 1
	maxBridges   = 64
)

// bridgeState is a registered bridge's durable state. A bridge stays
// registered while it has pending messages, even when it is no longer
// configured, so that taking a bridge out of the config (or misspelling its
// name) never deletes its backlog; limits still apply to those messages.
type bridgeState struct {
	name    string // "" = free slot
	pos     uint64 // every message for this bridge with seq <= pos is done
	pending uint64 // messages for this bridge with seq > pos
}

// state is everything the queue keeps besides the log itself. It is written
// as one record in the same transaction as the change it describes.
type state struct {
	dirty   bool   // set while open; still set at open means the last run did not close
	seq     uint64 // last sequence number assigned
	count   uint64 // messages in the log
	bytes   uint64 // key+value bytes in the log
	dropped [len(reasons)]uint64
	bridges [maxBridges]bridgeState
}

func (s *state) registered() (mask uint64) {
	for i := range s.bridges {
		if s.bridges[i].name != "" {
			mask |= 1 << i
		}
	}
	return mask
}

// done reports whether a record with this mask and seq is no longer needed
// by any bridge.
func (s *state) done(mask, seq uint64) bool {
	for m := mask; m != 0; m &= m - 1 {
		b := &s.bridges[bits.TrailingZeros64(m)]
		if b.name != "" && b.pos < seq {
			return false
		}
	}
	return true
}

// forget updates pending counts for a record removed by a limit.
func (s *state) forget(mask, seq uint64) {
	for m := mask; m != 0; m &= m - 1 {
		b := &s.bridges[bits.TrailingZeros64(m)]
		if b.name != "" && b.pos < seq && b.pending > 0 {
			b.pending--
		}
	}
}

func (s *state) marshal() []byte {
	b := make([]byte, 0, 64+len(reasons)*8+64)
	b = append(b, stateVersion)
	if s.dirty {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, s.seq)
	b = binary.AppendUvarint(b, s.count)
	b = binary.AppendUvarint(b, s.bytes)
	b = binary.AppendUvarint(b, uint64(len(s.dropped)))
	for _, d := range s.dropped {
		b = binary.AppendUvarint(b, d)
	}
	for i, br := range s.bridges {
		if br.name == "" {
			continue
		}
		b = append(b, byte(i))
		b = binary.AppendUvarint(b, uint64(len(br.name)))
		b = append(b, br.name...)
		b = binary.AppendUvarint(b, br.pos)
		b = binary.AppendUvarint(b, br.pending)
	}
	return b
}

func (s *state) unmarshal(b []byte) error {
	*s = state{}
	if len(b) < 2 || b[0] != stateVersion {
		return fmt.Errorf("%w: unknown state record", ErrCorrupt)
	}
	s.dirty = b[1] == 1
	d := b[2:]
	next := func() uint64 {
		v, n := binary.Uvarint(d)
		if n <= 0 {
			d = nil
			return 0
		}
		d = d[n:]
		return v
	}
	s.seq, s.count, s.bytes = next(), next(), next()
	nd := next()
	for i := uint64(0); i < nd && d != nil; i++ {
		v := next()
		if i < uint64(len(s.dropped)) {
			s.dropped[i] = v
		}
	}
	for len(d) > 0 {
		i := int(d[0])
		d = d[1:]
		l := next()
		if i >= maxBridges || l > uint64(len(d)) || l == 0 {
			return fmt.Errorf("%w: bad bridge entry in state record", ErrCorrupt)
		}
		s.bridges[i].name = string(d[:l])
		d = d[l:]
		s.bridges[i].pos, s.bridges[i].pending = next(), next()
		if d == nil {
			break
		}
	}
	if d == nil {
		return fmt.Errorf("%w: truncated state record", ErrCorrupt)
	}
	return nil
}
