package kserve_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/protocol"
)

// Only a Chorus remote (logits: tensor) takes pairs: KServe's Hugging Face
// server would score [a, b] as something else, so a replica in its format
// says no and is never sent any.
func TestTakesPairs(t *testing.T) {
	asked := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { asked = true }))
	defer srv.Close()
	for _, c := range []struct {
		logits string
		takes  bool
	}{{kserve.LogitsTensor, true}, {kserve.LogitsKServe, false}} {
		b := backend(t, kserve.Config{URL: srv.URL, Model: "m", Protocol: "v2", Logits: c.logits, Labels: []string{"a", "b"}})
		if b.TakesPairs() != c.takes {
			t.Errorf("logits %s: TakesPairs %v, want %v", c.logits, b.TakesPairs(), c.takes)
		}
		if c.takes {
			continue
		}
		_, err := b.PredictPairs(context.Background(), [][2]string{{"a", "b"}})
		if !errors.Is(err, protocol.ErrInvalidInput) || !strings.Contains(err.Error(), "take no text pairs") || asked {
			t.Errorf("logits %s: %v (remote asked: %v)", c.logits, err, asked)
		}
	}
}
