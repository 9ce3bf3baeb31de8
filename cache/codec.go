package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Key names the logits of text under a model: namespace, model name, the
// model's fingerprint (graph, tokenizer, max length — or a remote's declared
// revision) and the SHA-256 of the exact text. A new model file or revision
// can never serve old logits, and keys never contain the text itself.
func Key(namespace, model, fingerprint, text string) string {
	h := sha256.Sum256([]byte(text))
	return key(namespace, model, fingerprint, "", h)
}

// key joins a key's parts in one allocation: every cache lookup makes one.
func key(namespace, model, fingerprint, kind string, sum [sha256.Size]byte) string {
	fp := fingerprint[:min(32, len(fingerprint))]
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	var b strings.Builder
	b.Grow(len(namespace) + len(model) + len(fp) + len(kind) + 3 + len(hexSum))
	for _, s := range []string{namespace, ":", model, ":", fp, ":", kind} {
		b.WriteString(s)
	}
	b.Write(hexSum[:])
	return b.String()
}

// PairKey names the logits of a text pair (a, b) under a model. The pair
// is hashed unambiguously (the length of a, then a, then b: ("ab", "c")
// and ("a", "bc") differ), and the key has a "pair:" segment that no Key
// has, so a single text's key never equals a pair's whatever the text.
func PairKey(namespace, model, fingerprint, a, b string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(a)))])
	h.Write([]byte(a))
	h.Write([]byte(b))
	return key(namespace, model, fingerprint, "pair:", [sha256.Size]byte(h.Sum(nil)))
}

// Value layout, little endian:
//
//	byte 0     format version: 1, or 2 for the logits of an input the
//	           model truncated (the same layout; see EncodeRow)
//	byte 1-2   k, the number of logits
//	byte 3-10  the first 8 bytes of the fingerprint (hex-decoded), a second guard
//	then k float32
const (
	formatVersion = 1
	// formatTruncated marks an input cut to the model's max length. A
	// server that predates it reads such a value as corrupt and scores
	// the input again: safe in a rolling upgrade.
	formatTruncated = 2
	headerLen       = 11
)

// ErrCorrupt marks a value that must not be used.
var ErrCorrupt = errors.New("corrupt cache value")

func fpTag(fingerprint string) [8]byte {
	var tag [8]byte
	// Decoded in place, not with DecodeString: every cache read and write
	// checks the tag.
	if _, err := hex.Decode(tag[:], []byte(fingerprint[:min(16, len(fingerprint))])); err != nil {
		h := sha256.Sum256([]byte(fingerprint))
		copy(tag[:], h[:8])
	}
	return tag
}

// Encode packs one text's logits.
func Encode(fingerprint string, logits []float32) []byte {
	return EncodeRow(fingerprint, logits, false)
}

// EncodeRow packs one input's logits and whether the model truncated it.
func EncodeRow(fingerprint string, logits []float32, truncated bool) []byte {
	b := make([]byte, headerLen+4*len(logits))
	b[0] = formatVersion
	if truncated {
		b[0] = formatTruncated
	}
	binary.LittleEndian.PutUint16(b[1:3], uint16(len(logits)))
	tag := fpTag(fingerprint)
	copy(b[3:11], tag[:])
	for i, v := range logits {
		binary.LittleEndian.PutUint32(b[headerLen+4*i:], math.Float32bits(v))
	}
	return b
}

// Decode unpacks a value written by Encode for the same fingerprint and k
// labels; anything else is ErrCorrupt.
func Decode(fingerprint string, k int, b []byte) ([]float32, error) {
	row, _, err := DecodeRow(fingerprint, k, b)
	return row, err
}

// DecodeRow is Decode, also saying whether the input was truncated.
func DecodeRow(fingerprint string, k int, b []byte) ([]float32, bool, error) {
	row, err := decode(fingerprint, k, b)
	return row, err == nil && b[0] == formatTruncated, err
}

func decode(fingerprint string, k int, b []byte) ([]float32, error) {
	switch {
	case len(b) < headerLen:
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	case b[0] != formatVersion && b[0] != formatTruncated:
		return nil, fmt.Errorf("%w: format version %d", ErrCorrupt, b[0])
	case int(binary.LittleEndian.Uint16(b[1:3])) != k:
		return nil, fmt.Errorf("%w: %d logits, the model has %d labels", ErrCorrupt, binary.LittleEndian.Uint16(b[1:3]), k)
	case len(b) != headerLen+4*k:
		return nil, fmt.Errorf("%w: length %d for %d logits", ErrCorrupt, len(b), k)
	}
	if tag := fpTag(fingerprint); string(b[3:11]) != string(tag[:]) {
		return nil, fmt.Errorf("%w: written for another model fingerprint", ErrCorrupt)
	}
	out := make([]float32, k)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[headerLen+4*i:]))
	}
	return out, nil
}
