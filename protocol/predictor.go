package protocol

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Logits is a batch of raw classifier scores: row i belongs to text i, column
// j to label j. Values are what the model's final layer produced, before any
// softmax or temperature.
type Logits [][]float32

// Predictor is the contract every backend implements.
//
// Predict scores texts and returns exactly len(texts) rows of exactly
// len(Metadata().Labels) logits each. An empty batch returns an empty result
// and no error. Texts longer than the model's max length are truncated, never
// rejected — unless ctx carries a Truncation that refuses them, when a
// backend that can tell fails with ErrTooLarge naming the input; a backend
// that truncates reports the inputs it cut on that Truncation. Invalid
// UTF-8 is read as U+FFFD, as JSON decoders do. Predict is safe for
// concurrent use. It honours ctx: when ctx ends before the result is
// ready it returns an error that wraps ctx.Err(). Errors caused by the input
// wrap ErrInvalidInput; a backend that cannot serve (closed, overloaded, its
// remote down) wraps ErrUnavailable.
//
// Close releases the backend's resources; Predict must not be called after.
type Predictor interface {
	Predict(ctx context.Context, texts []string) (Logits, error)
	Metadata() ModelMetadata
	Close() error
}

// ModelMetadata describes what a predictor serves.
type ModelMetadata struct {
	// Labels are the class names by index (the model's id2label).
	Labels []string
	// MaxLength is the number of tokens, special tokens included, that a text
	// is truncated to.
	MaxLength int
	// Fingerprint identifies the exact computation: the SHA-256 of the graph
	// and the tokenizer settings. Equal fingerprints give equal logits.
	Fingerprint string
	// Platform names the runtime, as OIP model metadata reports it.
	Platform string
	// Activation is the function that turns this model's logits into
	// scores by default, as transformers' text-classification pipeline
	// chooses it from config.json: ActivationSigmoid for multi-label and
	// one-logit models, ActivationNone for regression, else
	// ActivationSoftmax. Empty: not known (a remote replica); softmax.
	Activation string
}

// Score functions a model's logits go through (ModelMetadata.Activation).
const (
	ActivationSoftmax = "softmax"
	ActivationSigmoid = "sigmoid"
	ActivationNone    = "none"
)

// CheckShape reports whether logits has the shape the contract promises for
// n texts and k labels.
func CheckShape(l Logits, n, k int) error {
	if len(l) != n {
		return fmt.Errorf("got %d rows of logits for %d texts", len(l), n)
	}
	for i, row := range l {
		if len(row) != k {
			return fmt.Errorf("row %d has %d logits, want %d", i, len(row), k)
		}
	}
	return nil
}

// ValidUTF8 returns s with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json writes strings: what a remote
// predictor reached over a binary transport (gRPC) must read, so that it
// scores the same text as over JSON.
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
