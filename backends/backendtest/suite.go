package backendtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/chorusml/chorus/protocol"
)

// Tolerances. The reference is PyTorch fp32; ONNX Runtime fp32 on the same
// graph agrees to ~1e-6 on these tiny models, so 1e-4 catches any wrong
// token, mask or padding while allowing kernel differences.
const (
	RefTolerance   = 1e-4
	BatchTolerance = 1e-5
)

// PairPredictor is a predictor that also scores text pairs (the in-process
// ONNX backend does); Run checks its pairs against the reference's.
type PairPredictor interface {
	PredictPairs(ctx context.Context, pairs [][2]string) (protocol.Logits, error)
}

// Run checks p against the contract of protocol.Predictor, using ref (the
// reference of the model p serves).
func Run(t *testing.T, p protocol.Predictor, ref Reference) {
	t.Helper()
	RunWithTolerance(t, p, ref, RefTolerance)
}

// RunWithTolerance is Run with another tolerance against the reference:
// GPU kernels (CUDA, TF32, fp16) differ from PyTorch's CPU fp32 more.
func RunWithTolerance(t *testing.T, p protocol.Predictor, ref Reference, tol float64) {
	t.Helper()
	meta := p.Metadata()
	k := len(meta.Labels)
	texts := ref.TextList()

	runMetadata(t, meta, ref)

	t.Run("BatchMatchesReference", func(t *testing.T) {
		got, err := p.Predict(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		if err := protocol.CheckShape(got, len(texts), k); err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, rt := range ref.Texts {
			d := MaxAbsDiff(got[i], rt.Logits)
			worst = max(worst, d)
			if d > tol {
				t.Errorf("text %d %q: logits %v, reference %v (max diff %.2g)", i, protocol.Clip(rt.Text, 40), got[i], rt.Logits, d)
			}
		}
		t.Logf("%s: max |logit - transformers| over %d texts = %.3g", ref.Model, len(ref.Texts), worst)
	})

	t.Run("BatchMatchesPaddedReference", func(t *testing.T) {
		if ref.Texts[0].BatchLogits == nil {
			t.Skip("reference has no batch_logits")
		}
		got, err := p.Predict(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, ref.Model+" batch vs padded PyTorch batch", got, ref.Texts, true, tol)
	})

	runPairs(t, p, ref, tol)

	t.Run("BatchEqualsOneAtATime", func(t *testing.T) {
		batch, err := p.Predict(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, text := range texts {
			one, err := p.Predict(context.Background(), []string{text})
			if err != nil {
				t.Fatal(err)
			}
			if err := protocol.CheckShape(one, 1, k); err != nil {
				t.Fatal(err)
			}
			if d := MaxAbsDiff(batch[i], f64(one[0])); d > max(BatchTolerance, tol/10) {
				t.Errorf("text %d: batched %v, alone %v", i, batch[i], one[0])
			}
			worst = max(worst, MaxAbsDiff(one[0], ref.Texts[i].Logits))
		}
		if worst > tol {
			t.Errorf("one at a time: max |logit - transformers| = %.3g", worst)
		}
		t.Logf("%s: one at a time: max |logit - transformers| over %d texts = %.3g", ref.Model, len(texts), worst)
	})

	runEdgeCases(t, p, texts)
	runConcurrent(t, p, ref, tol)
}

// runMetadata checks what the predictor says it serves.
func runMetadata(t *testing.T, meta protocol.ModelMetadata, ref Reference) {
	t.Helper()
	k := len(meta.Labels)
	t.Run("Metadata", func(t *testing.T) {
		if k == 0 {
			t.Fatal("no labels")
		}
		if k != len(ref.Texts[0].Logits) {
			t.Fatalf("%d labels, reference has %d logits", k, len(ref.Texts[0].Logits))
		}
		if meta.Fingerprint == "" {
			t.Error("empty fingerprint")
		}
		if meta.Activation != "" && ref.Activation != "" && meta.Activation != ref.Activation {
			t.Errorf("activation %q, transformers' pipeline applies %q", meta.Activation, ref.Activation)
		}
	})
}

// runPairs checks text pairs against the reference's, for predictors that
// take them.
func runPairs(t *testing.T, p protocol.Predictor, ref Reference, tol float64) {
	t.Helper()
	k := len(p.Metadata().Labels)
	t.Run("Pairs", func(t *testing.T) {
		pp, ok := p.(PairPredictor)
		if !ok || len(ref.Pairs) == 0 {
			t.Skip("no pairs: the predictor takes none or the reference has none")
		}
		if tp, ok := p.(interface{ TakesPairs() bool }); ok && !tp.TakesPairs() {
			t.Skip("no pairs: the predictor, as configured, takes none")
		}
		pairs := ref.PairList()
		got, err := pp.PredictPairs(context.Background(), pairs)
		if err != nil {
			t.Fatal(err)
		}
		if err := protocol.CheckShape(got, len(pairs), k); err != nil {
			t.Fatal(err)
		}
		checkRows(t, ref.Model+" pairs batched", got, ref.Pairs, false, tol)
		if ref.Pairs[0].BatchLogits != nil {
			checkRows(t, ref.Model+" pairs vs padded PyTorch batch", got, ref.Pairs, true, tol)
		}
		worst := 0.0
		for i, pair := range pairs {
			one, err := pp.PredictPairs(context.Background(), [][2]string{pair})
			if err != nil {
				t.Fatal(err)
			}
			worst = max(worst, MaxAbsDiff(one[0], ref.Pairs[i].Logits))
		}
		if worst > tol {
			t.Errorf("pairs one at a time: max |logit - transformers| = %.3g", worst)
		}
		t.Logf("%s: pairs one at a time: max |logit - transformers| over %d pairs = %.3g", ref.Model, len(pairs), worst)
	})
}

// runEdgeCases checks inputs at the contract's edges: none, repeated,
// invalid UTF-8, far over the model's length, and a cancelled context.
func runEdgeCases(t *testing.T, p protocol.Predictor, texts []string) {
	t.Helper()
	t.Run("EmptyBatch", func(t *testing.T) {
		got, err := p.Predict(context.Background(), nil)
		if err != nil {
			t.Fatalf("empty batch: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("empty batch gave %d rows", len(got))
		}
	})

	t.Run("DuplicateTexts", func(t *testing.T) {
		got, err := p.Predict(context.Background(), []string{texts[0], texts[1], texts[0]})
		if err != nil {
			t.Fatal(err)
		}
		if d := MaxAbsDiff(got[0], f64(got[2])); d > BatchTolerance {
			t.Errorf("same text, different logits: %v vs %v", got[0], got[2])
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Predict(ctx, texts)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: err = %v, want one wrapping context.Canceled", err)
		}
	})

	t.Run("InvalidUTF8ReadAsReplacement", func(t *testing.T) {
		got, err := p.Predict(context.Background(), []string{"caf\xe9 \xff\xfe ok", "caf\uFFFD \uFFFD\uFFFD ok"})
		if err != nil {
			t.Fatalf("invalid UTF-8 is input, not an error: %v", err)
		}
		if d := MaxAbsDiff(got[0], f64(got[1])); d > BatchTolerance {
			t.Errorf("invalid UTF-8 scored %v, its U+FFFD reading %v", got[0], got[1])
		}
	})

	t.Run("OverLengthTruncatedNotRejected", func(t *testing.T) {
		long := strings.Repeat("a rather long sentence about nothing much at all ", 2000)
		texts := []string{long + "and one ending", long + "and a different ending",
			"one beginning " + long, "a different beginning " + long, texts[0]}
		got, err := p.Predict(context.Background(), texts)
		if err != nil {
			t.Fatalf("an over-length text is truncated, never rejected: %v", err)
		}
		if len(got) != len(texts) || len(got[0]) != len(p.Metadata().Labels) {
			t.Fatalf("got %d rows of %d logits", len(got), len(got[0]))
		}
		// Past the model's length one side is cut off (the end, or the
		// beginning with truncation_side left): those texts score the same.
		right, left := MaxAbsDiff(got[0], f64(got[1])), MaxAbsDiff(got[2], f64(got[3]))
		if right > BatchTolerance && left > BatchTolerance {
			t.Errorf("neither side was cut: endings differ by %.2g, beginnings by %.2g", right, left)
		}
	})
}

// runConcurrent checks that concurrent callers each get their own answers.
func runConcurrent(t *testing.T, p protocol.Predictor, ref Reference, tol float64) {
	t.Helper()
	texts := ref.TextList()
	t.Run("Concurrent", func(t *testing.T) {
		const callers = 32
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each caller sends a different slice of texts so that
				// batches of different shapes run at the same time.
				lo := c % len(texts)
				hi := min(len(texts), lo+1+c%4)
				got, err := p.Predict(context.Background(), texts[lo:hi])
				if err != nil {
					errs <- err
					return
				}
				for i := range got {
					if d := MaxAbsDiff(got[i], ref.Texts[lo+i].Logits); d > tol {
						errs <- fmt.Errorf("caller %d text %d: diff %.2g", c, lo+i, d)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// checkRows compares logits row by row with the reference's (its padded
// batch logits when batch is set) and logs the worst difference.
func checkRows[F float32 | float64](t *testing.T, what string, got [][]F, rows []RefText, batch bool, tol float64) {
	t.Helper()
	worst := 0.0
	for i, r := range rows {
		want := r.Logits
		if batch {
			want = r.BatchLogits
		}
		d := MaxAbsDiff(got[i], want)
		worst = max(worst, d)
		if d > tol {
			pair := ""
			if r.TextPair != nil {
				pair = " / " + protocol.Clip(*r.TextPair, 40)
			}
			t.Errorf("%s: row %d %q%s: logits %v, reference %v (max diff %.2g)", what, i, protocol.Clip(r.Text, 40), pair, got[i], want, d)
		}
	}
	t.Logf("%s: max |logit - transformers| over %d rows = %.3g", what, len(rows), worst)
}

// CheckRows fails t unless got has one row per reference and each is
// within RefTolerance of transformers' logits; it logs the worst difference.
func CheckRows(t *testing.T, what string, got [][]float64, ref []RefText) {
	t.Helper()
	if len(got) != len(ref) {
		t.Fatalf("%s: %d rows for %d", what, len(got), len(ref))
	}
	checkRows(t, what, got, ref, false, RefTolerance)
}

// MaxAbsDiff is the largest |got[i] - want[i]|; +Inf if lengths differ.
func MaxAbsDiff[F float32 | float64](got []F, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range got {
		d = max(d, math.Abs(float64(got[i])-want[i]))
	}
	return d
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
