package protocol

import (
	"math"
	"strconv"
)

// FP32 marshals float32 values as JSON numbers with the shortest digits that
// round-trip a float32. NaN and ±Inf, which JSON cannot carry, become null.
type FP32 []float32

// MarshalJSON implements json.Marshaler.
func (v FP32) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(v)*12)
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat32(b, f)
	}
	return append(b, ']'), nil
}

func appendFloat32(b []byte, f float32) []byte {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, "null"...)
	}
	if a := math.Abs(x); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(b, x, 'e', -1, 32)
	}
	return strconv.AppendFloat(b, x, 'f', -1, 32)
}

// PyNumberDict marshals as the JSON that Python's json module writes for a
// dict {0: v0, 1: v1, ...} of floats: keys in index order as strings, each
// value printed by Format (PyRepr or PyRound4). Non-finite values become
// null so that the body stays valid JSON.
type PyNumberDict struct {
	Values []float32
	Format func(float64) string
}

// MarshalJSON implements json.Marshaler.
func (d PyNumberDict) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, v := range d.Values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, '"', ':')
		x := float64(v)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b = append(b, "null"...)
		} else {
			b = append(b, d.Format(x)...)
		}
	}
	return append(b, '}'), nil
}
