package protocol

import (
	"math"
	"strconv"
	"strings"
)

// PyRepr formats f exactly as Python's repr(float(f)) does: the shortest
// digits that round-trip, positional notation for exponents in [-4, 16), a
// trailing ".0" on integers, "e-05" style exponents, and inf/nan spelled the
// Python way. KServe's Hugging Face server prints logits this way.
func PyRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	// Go's shortest 'e' form has the same digits Python's repr chooses.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		return sign + mant + "e" + expStr[:1] + pad2(expStr[1:])
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}

func pad2(s string) string {
	if len(s) < 2 {
		return "0" + s
	}
	return s
}

// PyRound4 formats f as KServe's return_probabilities does:
// repr(float(f"{f:.4f}")), i.e. round half-even on the exact binary value to
// four decimals, then Python's repr of the result.
func PyRound4(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return PyRepr(f)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 4, 64), 64)
	if r == 0 && math.Signbit(f) {
		r = math.Copysign(0, -1) // Python keeps the sign: f"{-1e-9:.4f}" is "-0.0000"
	}
	return PyRepr(r)
}

// PyDict formats values as str() of a Python dict {0: v0, 1: v1, ...}, with
// each value formatted by format: the BYTES element KServe returns for
// return_probabilities and for raw logits.
func PyDict(values []float32, format func(float64) string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(i))
		b.WriteString(": ")
		b.WriteString(format(float64(v)))
	}
	b.WriteByte('}')
	return b.String()
}
