package onnx

// The Hugging Face tokenizers library (Rust, built by scripts/deps.sh into
// libtokenizers.a) through entry points Chorus patches into it
// (scripts/tokenizers/chorus.patch): a constructor that turns
// tokenizer.json's own truncation and padding off, and an encoder that takes
// texts as pointer + length, so that NUL reaches the tokenizer, encodes text
// pairs, and truncates as transformers does (longest_first) without
// post-processing the cut-off parts, which made very long texts slow. The upstream Go wrapper takes C strings (NUL ends
// the text) and hides its handle, so Chorus calls the C API itself.

/*
#cgo LDFLAGS: -ltokenizers -ldl -lm -lstdc++
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tokenizers_encode_options {
  bool add_special_tokens;
  bool return_type_ids;
  bool return_tokens;
  bool return_special_tokens_mask;
  bool return_attention_mask;
  bool return_offsets;
};

// As the Rust side defines it (len is a usize there).
struct tokenizers_buffer {
  uint32_t *ids;
  uint32_t *type_ids;
  uint32_t *special_tokens_mask;
  uint32_t *attention_mask;
  char **tokens;
  size_t *offsets;
  size_t len;
};

void *tokenizers_chorus_from_bytes(const uint8_t *bytes, size_t len, size_t max_len, uint8_t dir, char **error);
struct tokenizers_buffer tokenizers_chorus_encode(void *ptr, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
    bool pair, const struct tokenizers_encode_options *options, bool *truncated, char **error);
void tokenizers_chorus_free(void *ptr);
void tokenizers_free_buffer(struct tokenizers_buffer buffer);
void tokenizers_free_string(char *s);
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// hfTokenizer is one loaded tokenizer. The Rust tokenizer is immutable once
// built, so concurrent encode calls are safe; close must come after them.
type hfTokenizer struct {
	ptr unsafe.Pointer
	// special adds the tokenizer's special tokens ([CLS]/[SEP], <s>/</s>),
	// as transformers does unless told not to.
	special bool
}

// encoding is one tokenized text or pair: the graph's inputs, unpadded.
type encoding struct {
	ids, typeIDs, mask []int64
	// truncated reports that the text (or pair) was cut to the max length.
	truncated bool
}

// newHFTokenizer builds the tokenizer of tokenizer.json with truncation to
// maxLen tokens, special tokens included, on the left or right.
func newHFTokenizer(tokenizerJSON []byte, maxLen int, left, special bool) (*hfTokenizer, error) {
	if len(tokenizerJSON) == 0 {
		return nil, errors.New("empty tokenizer.json")
	}
	dir := C.uint8_t(1)
	if left {
		dir = 0
	}
	var cerr *C.char
	p := C.tokenizers_chorus_from_bytes((*C.uint8_t)(unsafe.Pointer(&tokenizerJSON[0])), C.size_t(len(tokenizerJSON)),
		C.size_t(maxLen), dir, &cerr)
	if p == nil {
		return nil, takeError(cerr, "load tokenizer")
	}
	return &hfTokenizer{ptr: p, special: special}, nil
}

func takeError(cerr *C.char, fallback string) error {
	if cerr == nil {
		return errors.New(fallback)
	}
	defer C.tokenizers_free_string(cerr)
	return errors.New(C.GoString(cerr))
}

// bytesOf points C at a Go string's bytes for the length of one call (cgo
// pins them; the C side only reads). An empty string gives nil, length 0.
func bytesOf(s string) (*C.uint8_t, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// encode tokenizes a, or the pair (a, b) when pair is set, with the
// tokenizer's special tokens unless they are off; every byte of both
// reaches the tokenizer.
func (t *hfTokenizer) encode(a, b string, pair, typeIDs bool) (encoding, error) {
	opts := C.struct_tokenizers_encode_options{
		add_special_tokens:    C.bool(t.special),
		return_type_ids:       C.bool(typeIDs),
		return_attention_mask: true,
	}
	ap, al := bytesOf(a)
	bp, bl := bytesOf(b)
	var truncated C.bool
	var cerr *C.char
	buf := C.tokenizers_chorus_encode(t.ptr, ap, al, bp, bl, C.bool(pair), &opts, &truncated, &cerr)
	if cerr != nil {
		return encoding{}, fmt.Errorf("tokenize: %w", takeError(cerr, ""))
	}
	defer C.tokenizers_free_buffer(buf)
	n := int(buf.len)
	enc := encoding{truncated: bool(truncated)}
	enc.ids = widen(buf.ids, n)
	enc.mask = widen(buf.attention_mask, n)
	if typeIDs {
		enc.typeIDs = widen(buf.type_ids, n)
	}
	return enc, nil
}

// widen copies n uint32s from C memory into a new []int64 (the graph's
// input type); nil for none.
func widen(p *C.uint32_t, n int) []int64 {
	if p == nil || n == 0 {
		return nil
	}
	src := unsafe.Slice((*uint32)(unsafe.Pointer(p)), n)
	out := make([]int64, n)
	for i, v := range src {
		out[i] = int64(v)
	}
	return out
}

func (t *hfTokenizer) close() {
	if t.ptr != nil {
		C.tokenizers_chorus_free(t.ptr)
		t.ptr = nil
	}
}
