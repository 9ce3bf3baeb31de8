package cache_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/chorusml/chorus/cache"
)

// Keys keep their format across releases (a rolling upgrade keeps the
// cache): namespace:model:fingerprint[:32]:hex(sha256), pairs with a
// "pair:" segment over the length-prefixed pair.
func TestKeyFormatIsStable(t *testing.T) {
	fp := strings.Repeat("0123456789abcdef", 3)
	for _, text := range []string{"", "a", "a fine film", strings.Repeat("é", 300)} {
		sum := sha256.Sum256([]byte(text))
		want := "chorus:m:" + fp[:32] + ":" + hex.EncodeToString(sum[:])
		if got := cache.Key("chorus", "m", fp, text); got != want {
			t.Errorf("Key(%q) = %q, want %q", text, got, want)
		}
	}
	h := sha256.New()
	h.Write([]byte{2})
	h.Write([]byte("abc"))
	want := "ns:m:short:pair:" + hex.EncodeToString(h.Sum(nil))
	if got := cache.PairKey("ns", "m", "short", "ab", "c"); got != want {
		t.Errorf("PairKey = %q, want %q", got, want)
	}
}
