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
