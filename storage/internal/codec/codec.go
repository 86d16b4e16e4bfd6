// Package codec encodes and decodes the queue's records.
//
// A record is the value stored under a message's sequence number. Its layout,
// all integers big-endian:
//
//	0      version (1)
//	1      flags: bits 0-1 QoS, bit 2 retain
//	2..5   CRC-32C of bytes 6..end
//	6..13  received_at, Unix milliseconds
//	14..21 bridge mask: bit i set when bridge i must forward the message
//	22..   uvarint len + topic, uvarint count + (uvarint len + key, uvarint len + value)...
//	       for MQTT 5 user properties, uvarint len + payload
//
// The mask sits at a fixed offset so that deleting a record can read it
// without decoding the rest.
package codec

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Version is the record format written by Encode.
const Version = 1

const headerLen = 22

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrShort is returned for a record shorter than its header or its fields.
	ErrShort = errors.New("codec: record truncated")
	// ErrVersion is returned for a record of an unknown format version.
	ErrVersion = errors.New("codec: unknown record version")
	// ErrChecksum is returned when a record's CRC does not match its bytes.
	ErrChecksum = errors.New("codec: checksum mismatch")
	// ErrTrailing is returned when bytes follow the payload.
	ErrTrailing = errors.New("codec: trailing bytes")
)

// Property is an MQTT 5 user property.
type Property struct {
	Key, Value string
}

// Record is the decoded form of a queued message. Seq is not part of the
// record: it is the record's key.
type Record struct {
	QoS        byte
	Retain     bool
	ReceivedAt int64 // Unix milliseconds
	Bridges    uint64
	Topic      string
	Props      []Property
	Payload    []byte
}

// Size returns the encoded length of r.
func Size(r *Record) int {
	n := headerLen + uvarintLen(len(r.Topic)) + len(r.Topic) + uvarintLen(len(r.Props))
	for _, p := range r.Props {
		n += uvarintLen(len(p.Key)) + len(p.Key) + uvarintLen(len(p.Value)) + len(p.Value)
	}
	return n + uvarintLen(len(r.Payload)) + len(r.Payload)
}

// Append appends the encoding of r to dst.
func Append(dst []byte, r *Record) []byte {
	start := len(dst)
	flags := r.QoS & 0x03
	if r.Retain {
		flags |= 0x04
	}
	dst = append(dst, Version, flags, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.ReceivedAt))
	dst = binary.BigEndian.AppendUint64(dst, r.Bridges)
	dst = appendString(dst, r.Topic)
	dst = binary.AppendUvarint(dst, uint64(len(r.Props)))
	for _, p := range r.Props {
		dst = appendString(dst, p.Key)
		dst = appendString(dst, p.Value)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Payload)))
	dst = append(dst, r.Payload...)
	binary.BigEndian.PutUint32(dst[start+2:], crc32.Checksum(dst[start+6:], crcTable))
	return dst
}

// Verify checks b's version and checksum without decoding it.
func Verify(b []byte) error {
	if len(b) < headerLen {
		return ErrShort
	}
	if b[0] != Version {
		return ErrVersion
	}
	if binary.BigEndian.Uint32(b[2:]) != crc32.Checksum(b[6:], crcTable) {
		return ErrChecksum
	}
	return nil
}

// Bridges returns the bridge mask of a verified record.
func Bridges(b []byte) uint64 { return binary.BigEndian.Uint64(b[14:]) }

// ReceivedAt returns the receive time (Unix ms) of a verified record.
func ReceivedAt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[6:])) }

// Decode verifies b and decodes it into r. Topic, property and payload bytes
// are copied, so r stays valid after b is reused (bbolt's slices are valid
// only inside their transaction).
func Decode(b []byte, r *Record) error {
	if err := Verify(b); err != nil {
		return err
	}
	var v View
	err := Parse(b, &v)
	*r = Record{QoS: v.QoS, Retain: v.Retain, ReceivedAt: v.ReceivedAt, Bridges: v.Bridges, Topic: string(v.Topic),
		Props: v.Props, Payload: append([]byte{}, v.Payload...)}
	return err
}

// View is a record parsed in place: Topic and Payload point into the
// encoded bytes and are valid only as long as they are. A reader that
// copies what it keeps (into one buffer for many records) parses with
// View; Decode copies each field.
type View struct {
	QoS        byte
	Retain     bool
	ReceivedAt int64
	Bridges    uint64
	Topic      []byte
	Props      []Property // copied: few records have any
	Payload    []byte
}

// Parse parses b, which Verify has accepted, into v without copying.
func Parse(b []byte, v *View) error {
	if len(b) < headerLen {
		return ErrShort
	}
	v.QoS = b[1] & 0x03
	v.Retain = b[1]&0x04 != 0
	v.ReceivedAt = ReceivedAt(b)
	v.Bridges = Bridges(b)
	d := decoder{b: b[headerLen:]}
	v.Topic = d.bytes()
	n := d.uvarint()
	v.Props = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := string(d.bytes())
		val := string(d.bytes())
		v.Props = append(v.Props, Property{Key: k, Value: val})
	}
	v.Payload = d.bytes()
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrTrailing
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func uvarintLen(n int) int {
	l := 1
	for v := uint64(n); v >= 0x80; v >>= 7 {
		l++
	}
	return l
}
