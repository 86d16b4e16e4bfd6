package codec

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

func sample() *Record {
	return &Record{
		QoS:        1,
		Retain:     true,
		ReceivedAt: 1764000000123,
		Bridges:    0b101,
		Topic:      "sensors/pump-1/pressure",
		Props:      []Property{{Key: "unit", Value: "bar"}},
		Payload:    []byte(`{"p":3.2}`),
	}
}

func TestRoundTrip(t *testing.T) {
	for _, r := range []*Record{sample(), {Topic: "t"}, {Topic: "a/b", Payload: make([]byte, 70000), QoS: 2}} {
		b := Append(nil, r)
		if len(b) != Size(r) {
			t.Fatalf("Size = %d, encoded %d bytes", Size(r), len(b))
		}
		var got Record
		if err := Decode(b, &got); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if r.Payload == nil {
			r.Payload = []byte{}
		}
		if !reflect.DeepEqual(&got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *r)
		}
		if Bridges(b) != r.Bridges || ReceivedAt(b) != r.ReceivedAt {
			t.Fatalf("header accessors disagree with the record")
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := Append(nil, sample())
	flip := append([]byte(nil), good...)
	flip[len(flip)-1] ^= 0x01
	ver := append([]byte(nil), good...)
	ver[0] = 9
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header only", good[:10], ErrShort},
		{"flipped payload bit", flip, ErrChecksum},
		{"unknown version", ver, ErrVersion},
		{"truncated body", fixCRC(append([]byte(nil), good[:len(good)-3]...)), ErrShort},
		{"trailing byte", fixCRC(append(append([]byte(nil), good...), 0)), ErrTrailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			if err := Decode(tc.b, &r); !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeCopies(t *testing.T) {
	b := Append(nil, sample())
	var r Record
	if err := Decode(b, &r); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xff
	}
	if string(r.Payload) != `{"p":3.2}` || r.Topic != "sensors/pump-1/pressure" {
		t.Fatalf("decoded record aliases its input: %+v", r)
	}
}

// fixCRC rewrites b's checksum so that fuzzing reaches the body parser.
func fixCRC(b []byte) []byte {
	if len(b) >= headerLen {
		binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], crcTable))
	}
	return b
}

func FuzzDecode(f *testing.F) {
	f.Add(Append(nil, sample()))
	f.Add(Append(nil, &Record{Topic: "x"}))
	f.Add([]byte{Version, 0, 0, 0, 0, 0})
	f.Add(make([]byte, headerLen+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = fixCRC(append([]byte(nil), b...))
		var r Record
		err := Decode(b, &r)
		// Parse, in place, accepts what Decode accepts of what Verify
		// accepts, with the same fields.
		var v View
		if Verify(b) != nil {
			// Parse trusts its caller to have verified.
		} else if perr := Parse(b, &v); (perr == nil) != (err == nil) {
			t.Fatalf("Decode: %v, Parse: %v", err, perr)
		} else if err == nil {
			pv := Record{QoS: v.QoS, Retain: v.Retain, ReceivedAt: v.ReceivedAt, Bridges: v.Bridges, Topic: string(v.Topic),
				Props: v.Props, Payload: append([]byte{}, v.Payload...)}
			if !reflect.DeepEqual(r, pv) {
				t.Fatalf("Parse differs from Decode:\n%+v\n%+v", pv, r)
			}
		}
		if err != nil {
			return
		}
		// A record that decodes re-encodes to one that decodes the same.
		var again Record
		if err := Decode(Append(nil, &r), &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("decode(encode(r)) != r:\n%+v\n%+v", r, again)
		}
		if Size(&r) > len(b) {
			t.Fatalf("canonical size %d exceeds input %d", Size(&r), len(b))
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(byte(1), true, int64(1764000000123), uint64(5), "a/b", "k", "v", []byte("payload"))
	f.Fuzz(func(t *testing.T, qos byte, retain bool, at int64, mask uint64, topic, k, v string, payload []byte) {
		r := &Record{QoS: qos & 3, Retain: retain, ReceivedAt: at, Bridges: mask, Topic: topic,
			Props: []Property{{k, v}}, Payload: append([]byte{}, payload...)}
		var got Record
		if err := Decode(Append(nil, r), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *r)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	r := &Record{QoS: 1, ReceivedAt: 1764000000123, Bridges: 1, Topic: "sensors/s-01/telemetry", Payload: make([]byte, 64)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(Size(r)))
	for b.Loop() {
		buf = Append(buf[:0], r)
	}
}
