package onnx_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/protocol"
)

// With batching on, the model still keeps the whole contract: batches are
// split back exactly, and each result equals the text run alone.
func TestContractWithBatching(t *testing.T) {
	for _, name := range []string{"sst2-tiny-a", "bert-tiny-tt"} {
		t.Run(name, func(t *testing.T) {
			m := open(t, name, onnx.Options{IntraOpThreads: 1, Batching: onnx.Batching{MaxBatchSize: 8, MaxBatchTokens: 1024, MaxQueueDelay: time.Millisecond}})
			backendtest.Run(t, m, reference(t, name))
		})
	}
}

// The registry's default, continuous batching, keeps the whole contract.
func TestContractWithDefaultBatching(t *testing.T) {
	if d := onnx.DefaultBatching(); d.MaxQueueDelay != 0 || !d.Enabled() {
		t.Fatalf("default batching %+v: want continuous (on, no queue delay)", d)
	}
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			m := open(t, name, onnx.Options{IntraOpThreads: 1, Batching: onnx.DefaultBatching()})
			backendtest.Run(t, m, reference(t, name))
		})
	}
}

// Concurrent one-text requests are run together: fewer runs than requests.
func TestBatchingCoalesces(t *testing.T) {
	m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, Batching: onnx.Batching{MaxBatchSize: 64, MaxQueueDelay: 20 * time.Millisecond}})
	ref := reference(t, "sst2-tiny-a")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt := ref.Texts[i%len(ref.Texts)]
			got, err := m.Predict(context.Background(), []string{rt.Text})
			if err == nil && backendtest.MaxAbsDiff(got[0], rt.Logits) > backendtest.RefTolerance {
				err = errors.New("wrong logits for " + rt.Text)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := m.BatchStats()
	t.Logf("64 concurrent requests: %d runs, %d rows", st.Runs, st.Rows)
	if st.Rows != 64 || st.Runs >= 64 {
		t.Errorf("stats %+v: want 64 rows in fewer than 64 runs", st)
	}
}

// Long and short texts are run apart: the padded-token budget holds.
func TestBatchingTokenBudget(t *testing.T) {
	m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, Batching: onnx.Batching{MaxBatchSize: 64, MaxBatchTokens: 600, MaxQueueDelay: time.Millisecond}})
	ref := reference(t, "sst2-tiny-a")
	texts := ref.TextList() // short texts and a few of 512 tokens
	got, err := m.Predict(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, rt := range ref.Texts {
		if d := backendtest.MaxAbsDiff(got[i], rt.Logits); d > backendtest.RefTolerance {
			t.Errorf("text %d off by %v", i, d)
		}
	}
	// The short texts fit 600 tokens together; a 512-token text cannot
	// join them or another.
	long := 0
	for _, rt := range ref.Texts {
		if len(rt.InputIDs) == 512 {
			long++
		}
	}
	if st := m.BatchStats(); long < 2 || st.Runs != uint64(1+long) {
		t.Errorf("%d runs, want %d (short texts together, each of the %d long ones alone)", st.Runs, 1+long, long)
	}
}

func TestBatchingQueueFullAndCancelled(t *testing.T) {
	m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, Batching: onnx.Batching{MaxBatchSize: 1, MaxQueueDelay: time.Millisecond, QueueSize: 1}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var full int
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Predict(context.Background(), []string{"a fairly ordinary sentence about a film"})
			if errors.Is(err, protocol.ErrUnavailable) {
				mu.Lock()
				full++
				mu.Unlock()
			} else if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if full == 0 || m.BatchStats().Rejected == 0 {
		t.Errorf("200 concurrent requests into a queue of 1: %d rejected", full)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Predict(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCloseWithBatching(t *testing.T) {
	m, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{Batching: onnx.Batching{MaxBatchSize: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(context.Background(), []string{"x"}); !errors.Is(err, protocol.ErrUnavailable) {
		t.Errorf("after close: %v", err)
	}
}

// Session options keep the logits; bad ones and a missing CUDA provider
// fail at Open with a clear error.
func TestSessionOptions(t *testing.T) {
	off := false
	noSpin, spin := time.Duration(0), time.Millisecond
	spins := []*time.Duration{&noSpin, nil, &spin, &noSpin} // never, the default, longer
	for i, level := range []string{"disable", "basic", "extended", "all"} {
		m := open(t, "sst2-tiny-a", onnx.Options{GraphOptimization: level, InterOpThreads: 1, MemoryArena: &off, IntraOpSpin: spins[i]})
		ref := reference(t, "sst2-tiny-a")
		got, err := m.Predict(context.Background(), ref.TextList())
		if err != nil {
			t.Fatal(err)
		}
		for i, rt := range ref.Texts {
			if d := backendtest.MaxAbsDiff(got[i], rt.Logits); d > backendtest.RefTolerance {
				t.Errorf("%s: text %d off by %v", level, i, d)
			}
		}
	}
	for opts, want := range map[*onnx.Options]string{
		{GraphOptimization: "max"}: "graph optimization",
		{Device: "tpu"}:            "want cpu or cuda:N",
		{Device: "cuda:0"}:         "docs/GPU.md",
	} {
		if _, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), *opts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error mentioning %q", *opts, err, want)
		}
	}
}

func TestMaxRequestTokens(t *testing.T) {
	m := open(t, "sst2-tiny-a", onnx.Options{MaxRequestTokens: 20})
	if _, err := m.Predict(context.Background(), []string{"short", "texts"}); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
	_, err := m.Predict(context.Background(), []string{strings.Repeat("word ", 30)})
	if !errors.Is(err, protocol.ErrTooLarge) || !strings.Contains(err.Error(), "the limit is 20") {
		t.Fatalf("over the limit: %v", err)
	}
}

// Runs that overlap another take their share of the threads from a second
// session, which scores as the first; with no threads to share, or one run
// at a time, there is none. The contract holds either way.
func TestConcurrentRunsSession(t *testing.T) {
	ref := reference(t, "sst2-tiny-a")
	for _, tc := range []struct {
		threads, runs int
		want          bool
	}{{2, 2, true}, {1, 2, false}, {2, 1, false}} {
		t.Run(fmt.Sprintf("threads=%d,runs=%d", tc.threads, tc.runs), func(t *testing.T) {
			m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: tc.threads, Batching: onnx.Batching{ConcurrentRuns: tc.runs}})
			got, ok, err := m.PredictOverlapping(context.Background(), ref.TextList())
			if ok != tc.want || err != nil {
				t.Fatalf("session for overlapping runs: %v (%v), want %v", ok, err, tc.want)
			}
			for i, rt := range ref.Texts {
				if ok && backendtest.MaxAbsDiff(got[i], rt.Logits) > backendtest.RefTolerance {
					t.Errorf("%q on the overlapping runs' session: %v, want %v", rt.Text, got[i], rt.Logits)
				}
			}
			backendtest.Run(t, m, ref)
		})
	}
}

// overlapCounter is an Observer that counts overlapping runs.
type overlapCounter struct{ n atomic.Int64 }

func (*overlapCounter) ObserveRun(int, time.Duration, time.Duration) {}
func (*overlapCounter) ObserveQueueDepth(int)                        {}
func (o *overlapCounter) ObserveOverlappingRun()                     { o.n.Add(1) }

// Under concurrent load, runs overlap and the observer hears of it; every
// answer is still the reference's.
func TestConcurrentRunsObserved(t *testing.T) {
	obs := &overlapCounter{}
	m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 2, Batching: onnx.Batching{MaxBatchSize: 4, ConcurrentRuns: 2}, Observer: obs})
	ref := reference(t, "sst2-tiny-a")
	// Overlap is up to the scheduler: load the model until it shows.
	for round := 0; round < 50 && obs.n.Load() == 0; round++ {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				rt := ref.Texts[i%len(ref.Texts)]
				got, err := m.Predict(context.Background(), []string{rt.Text})
				if err != nil {
					t.Error(err)
				} else if backendtest.MaxAbsDiff(got[0], rt.Logits) > backendtest.RefTolerance {
					t.Errorf("%q: %v, want %v", rt.Text, got[0], rt.Logits)
				}
			})
		}
		wg.Wait()
	}
	if obs.n.Load() == 0 {
		t.Error("no run overlapped another in 50 rounds of 32 concurrent requests")
	}
}
