package devices

import (
	"encoding/json"
	"math"
	"time"
)

// Value is one measured quantity in a reading.
type Value struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"` // "°C", "hPa", "%RH", "V", a scale's unit; none for a level
}

// Reading is the payload a device publishes, as JSON.
type Reading struct {
	Device string           `json:"device"`
	Time   string           `json:"time"` // RFC 3339, UTC, milliseconds
	Values map[string]Value `json:"values"`
}

// TimeFormat is the format of Reading.Time (always UTC).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// sample is what one read of a device yields for one topic.
type sample struct {
	topic  string
	time   time.Time
	values map[string]Value
	// key, when set, is the one value that only_on_change compares: an
	// ads1115 channel's scaled value, and not the input_voltage it was
	// computed from, whose deadband would be in another unit.
	key string
}

// compared returns the values that only_on_change compares.
func (s sample) compared() map[string]Value {
	if s.key == "" {
		return s.values
	}
	return map[string]Value{s.key: s.values[s.key]}
}

func (s sample) payload(device string) []byte {
	b, err := json.Marshal(Reading{Device: device, Time: s.time.UTC().Format(TimeFormat), Values: s.values})
	if err != nil {
		panic("devices: encoding a reading: " + err.Error()) // only NaN or Inf can fail, and round removes them
	}
	return b
}

// round rounds v to n decimals; NaN and ±Inf, which JSON cannot carry,
// become 0 (a driver never yields them).
func round(v float64, n int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow10(n)
	return math.Round(v*p) / p
}

// onChange is the only_on_change filter of one topic: it remembers the
// values last published.
type onChange struct {
	last map[string]float64
}

// changed reports whether any value moved by more than deadband since the
// last published reading, or whether there is none yet.
func (f *onChange) changed(values map[string]Value, deadband float64) bool {
	if f.last == nil || len(values) != len(f.last) {
		return true
	}
	for k, v := range values {
		last, ok := f.last[k]
		if !ok || math.Abs(v.Value-last) > deadband {
			return true
		}
	}
	return false
}

// published records values as the last published reading.
func (f *onChange) published(values map[string]Value) {
	f.last = make(map[string]float64, len(values))
	for k, v := range values {
		f.last[k] = v.Value
	}
}
