package cache

import (
	"strings"
	"testing"
)

// A pair key differs from every text key of the same model, from the
// other split of the same characters, and from the swapped pair.
func TestPairKey(t *testing.T) {
	k := PairKey("ns", "m", "fp", "ab", "c")
	for _, other := range []string{
		PairKey("ns", "m", "fp", "a", "bc"),
		PairKey("ns", "m", "fp", "c", "ab"),
		Key("ns", "m", "fp", "abc"),
		Key("ns", "m", "fp", "pair:"+k[strings.LastIndex(k, ":")+1:]),
	} {
		if other == k {
			t.Errorf("%s collides", k)
		}
	}
	if PairKey("ns", "m", "fp", "ab", "c") != k {
		t.Error("PairKey is not deterministic")
	}
	if !strings.HasPrefix(k, "ns:m:fp:pair:") {
		t.Errorf("key %s", k)
	}
}

// A truncated input's row keeps its logits and says it was truncated;
// Decode reads both kinds.
func TestEncodeRowTruncated(t *testing.T) {
	fp := "c649c2b56541218cd737ff3c1a54c0ba"
	for _, cut := range []bool{false, true} {
		b := EncodeRow(fp, []float32{1.5, -2}, cut)
		row, got, err := DecodeRow(fp, 2, b)
		if err != nil || got != cut || row[0] != 1.5 || row[1] != -2 {
			t.Errorf("truncated=%v: %v %v %v", cut, row, got, err)
		}
		if row, err := Decode(fp, 2, b); err != nil || row[1] != -2 {
			t.Errorf("Decode of truncated=%v: %v %v", cut, row, err)
		}
	}
	if string(Encode(fp, []float32{1})) != string(EncodeRow(fp, []float32{1}, false)) {
		t.Error("Encode must write the format it always wrote")
	}
}
