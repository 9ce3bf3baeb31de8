package protocol

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParsePyDict(t *testing.T) {
	good := []struct {
		in   string
		want []float32
	}{
		{"{0: -4.068715572357178, 1: 4.366886138916016}", []float32{-4.068715572357178, 4.366886138916016}},
		{"{0: 1.0, 1: -2.5e-05, 2: 3e+16}", []float32{1, -2.5e-05, 3e16}},
		{"{1: 2.0, 0: 1.0}", []float32{1, 2}},
		{" {0:1.5,1:-0.0} ", []float32{1.5, float32(math.Copysign(0, -1))}},
		{"{0: 7}", []float32{7}},
	}
	for _, c := range good {
		got, err := ParsePyDict(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParsePyDict(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	got, err := ParsePyDict("{0: inf, 1: -inf, 2: nan}")
	if err != nil || !math.IsInf(float64(got[0]), 1) || !math.IsInf(float64(got[1]), -1) || !math.IsNaN(float64(got[2])) {
		t.Errorf("non-finite: %v %v", got, err)
	}

	bad := map[string]string{
		"":                         `want '{', got the end`,
		"[0.1, 0.2]":               `want '{', got '['`,
		"{}":                       "empty dict",
		"{0: 1.0":                  "unterminated",
		"{0: 1.0,}":                "want a label index",
		"{0 1.0}":                  `want ':'`,
		"{a: 1.0}":                 "want a label index",
		"{-1: 1.0}":                "want a label index",
		"{0: one}":                 "want a float",
		"{0: 1.0, 0: 2.0}":         "appears twice",
		"{0: 1.0, 2: 2.0}":         "labels are not 0..1",
		"{0: 1.0} extra":           "trailing text",
		"{0: 1.0; 1: 2.0}":         `want ','`,
		"{0: 0x10}":                "want a float",
		"{0: 1..0}":                "want a float",
		`{"0": 1.0}`:               "want a label index",
		"{0: +1.0}":                "want a float",
		"{0: 1.0, 1: 2.0, 2: '3'}": "want a float",
	}
	for in, want := range bad {
		_, err := ParsePyDict(in)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadGateway) {
			t.Errorf("ParsePyDict(%q) error %v, want one containing %q and wrapping ErrBadGateway", in, err, want)
		}
	}
}

// Whatever PyDict writes, ParsePyDict reads back exactly.
func TestPyDictRoundTrip(t *testing.T) {
	for _, row := range [][]float32{{-4.068715572357178, 4.366886138916016}, {1e-30, 3.4e38, -0.5}, {0}} {
		got, err := ParsePyDict(PyDict(row, PyRepr))
		if err != nil || !slices.Equal(got, row) {
			t.Errorf("round trip %v: %v %v", row, got, err)
		}
	}
}

func FuzzParsePyDict(f *testing.F) {
	for _, s := range []string{"{0: -4.068715572357178, 1: 4.366886138916016}", "{0: nan}", "{}", "{0: 1e-05, 1: 2.0}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals, err := ParsePyDict(s)
		if err == nil && len(vals) == 0 {
			t.Fatalf("no error and no values for %q", s)
		}
	})
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"abcdef", 3, "abc…"}, {"é漢字", 4, "é…"}, {"漢字", 1, "…"}} {
		if got := Clip(c.in, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
