package onnx

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel/trace"
)

// Options tune how a model folder is served. The zero value is valid.
type Options struct {
	// MaxLength truncates texts to this many tokens, special tokens
	// included. The length used is the smallest of this, the tokenizer's
	// model_max_length (when set) and the tokens the model's positions take
	// (max_position_embeddings, less padding_idx+1 for RoBERTa-family
	// models); more than the positions take is an error. Default (0): the
	// model's own limits.
	MaxLength int
	// LowerCase overrides the tokenizer's lowercasing (nil: as its
	// tokenizer.json says), as KServe's --disable_lower_case.
	LowerCase *bool
	// NoSpecialTokens encodes without [CLS]/[SEP] and the like, as
	// KServe's --disable_special_tokens. Default false.
	NoSpecialTokens bool
	// Dtype picks the graph optimum exported for a weight type (one of
	// Dtypes; float16 serves onnx/model_fp16.onnx) when the folder has it
	// and GraphFile is not set; otherwise, and by default, the fp32 graph.
	Dtype string
	// TokenizerDir takes the tokenizer from another folder (another
	// revision of the repo, as KServe's --tokenizer_revision). Default: the
	// model's own.
	TokenizerDir string
	// GraphFile chooses the ONNX graph, relative to the model folder (e.g.
	// onnx/model_quantized.onnx, as Hub repos with several graphs ship
	// them). Default (""): onnx/model.onnx, else model.onnx.
	GraphFile string
	// IntraOpThreads is ONNX Runtime's intra-op thread count for a run
	// that has the model to itself. Default (0): ONNX Runtime's choice,
	// one per core. With batching and Batching.ConcurrentRuns > 1 on a
	// CPU, runs that overlap another each get IntraOpThreads (default: the
	// cores) / ConcurrentRuns threads, at least one, from a second session
	// of the graph: the weights are held twice.
	IntraOpThreads int
	// InterOpThreads is ONNX Runtime's inter-op thread count. Default (0):
	// ONNX Runtime's choice.
	InterOpThreads int
	// IntraOpSpin is how long an idle intra-op thread spins before it
	// sleeps; 0 turns spinning off. Default (nil): DefaultIntraOpSpin.
	IntraOpSpin *time.Duration
	// GraphOptimization is "disable", "basic", "extended" or "all" (ONNX
	// Runtime's default, "").
	GraphOptimization string
	// MemoryArena turns ONNX Runtime's CPU memory arena on or off (nil:
	// ONNX Runtime's default, on).
	MemoryArena *bool
	// Device is "cpu" (default) or "cuda:N" (the CUDA execution provider on
	// GPU N; needs ONNX Runtime's CUDA provider libraries beside the core
	// library, see docs/GPU.md).
	Device string
	// Batching runs concurrent requests together. Default: off.
	Batching Batching
	// Observer receives run times and batch sizes (metrics). Default: none.
	Observer Observer
	// Tracer makes spans for tokenisation, batch waits and runs. Default: none.
	Tracer trace.Tracer
	// MaxRequestTokens bounds the tokens of one request, all texts together
	// after truncation; past it Predict fails with ErrTooLarge (413).
	// Default 0: no bound.
	MaxRequestTokens int
	// LongText, when set, classifies texts longer than a window as a whole
	// (see LongText; chunk.go). Default nil: truncate to MaxLength.
	LongText *LongText
}

// DefaultIntraOpSpin is how long ONNX Runtime's idle intra-op threads spin
// before they sleep. Long enough to bridge the gaps between the operators
// of one run (microseconds), short enough that threads stop spinning soon
// after a run ends: ONNX Runtime's own default spins far longer, and when
// other processes want the cores the spinning threads take them from the
// server too. Measured on 2 cores, int8 DistilBERT, 64 clients (README,
// Performance): with a busy process beside it 282 req/s against 244 with
// ONNX Runtime's spinning and 391 with none; on a quiet machine within
// noise of ONNX Runtime's spinning and about 5 % ahead of none.
const DefaultIntraOpSpin = 100 * time.Microsecond

// GraphOptimizations are the valid GraphOptimization names, weakest first.
var GraphOptimizations = []string{"disable", "basic", "extended", "all"}

// DefaultGraphOptimization is ONNX Runtime's own default, what "" means.
const DefaultGraphOptimization = "all"

// DeviceCPU is the default device; CUDA devices are "cuda:N" (ValidDevice).
const DeviceCPU = "cpu"

var cudaRE = regexp.MustCompile(`^cuda:[0-9]+$`)

// ValidDevice reports whether d names a device Options.Device accepts.
func ValidDevice(d string) bool { return d == "" || d == DeviceCPU || cudaRE.MatchString(d) }

var graphLevels = map[string]ort.GraphOptimizationLevel{
	"disable": ort.GraphOptimizationLevelDisableAll, "basic": ort.GraphOptimizationLevelEnableBasic,
	"extended": ort.GraphOptimizationLevelEnableExtended, "all": ort.GraphOptimizationLevelEnableAll,
}

// sessionOptions turns Options into ONNX Runtime's session options.
func sessionOptions(opts Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	fail := func(what string, err error) (*ort.SessionOptions, error) {
		so.Destroy()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return fail("set intra-op threads", err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return fail("set inter-op threads", err)
		}
	}
	if err := setSpin(so, opts.IntraOpSpin); err != nil {
		return fail("intra-op spinning", err)
	}
	if opts.GraphOptimization != "" {
		level, ok := graphLevels[opts.GraphOptimization]
		if !ok {
			return fail("graph optimization", fmt.Errorf("%q is not disable, basic, extended or all", opts.GraphOptimization))
		}
		if err := so.SetGraphOptimizationLevel(level); err != nil {
			return fail("set graph optimization", err)
		}
	}
	if opts.MemoryArena != nil {
		if err := so.SetCpuMemArena(*opts.MemoryArena); err != nil {
			return fail("set memory arena", err)
		}
	}
	switch dev := opts.Device; {
	case dev == "" || dev == "cpu":
	case strings.HasPrefix(dev, "cuda:"):
		id, err := strconv.Atoi(strings.TrimPrefix(dev, "cuda:"))
		if err != nil || id < 0 {
			return fail("device", fmt.Errorf("%q: want cuda:N", dev))
		}
		const hint = "CUDA execution provider (are libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside the core library? see docs/GPU.md)"
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fail(hint, err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(map[string]string{"device_id": strconv.Itoa(id)}); err != nil {
			return fail(hint, err)
		}
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return fail(hint, err)
		}
	default:
		return fail("device", fmt.Errorf("%q: want cpu or cuda:N", dev))
	}
	return so, nil
}

// setSpin sets how long idle intra-op threads spin (nil: the default).
func setSpin(so *ort.SessionOptions, spin *time.Duration) error {
	d := DefaultIntraOpSpin
	if spin != nil {
		d = *spin
	}
	if d <= 0 {
		return so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0")
	}
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "1"); err != nil {
		return err
	}
	return so.AddSessionConfigEntry("session.intra_op.spin_duration_us", strconv.FormatInt(max(1, d.Microseconds()), 10))
}

// openSessions opens the graph's session and, when overlapping runs take a
// share of the threads (overlapThreads), a second session for them.
func openSessions(graphPath string, inputs []string, output string, opts Options) (sess, overlap *ort.DynamicAdvancedSession, err error) {
	open := func(o Options) (*ort.DynamicAdvancedSession, error) {
		so, err := sessionOptions(o)
		if err != nil {
			return nil, err
		}
		defer so.Destroy()
		s, err := ort.NewDynamicAdvancedSession(graphPath, inputs, []string{output}, so)
		if err != nil {
			return nil, fmt.Errorf("create session for %s: %w", graphPath, err)
		}
		return s, nil
	}
	if sess, err = open(opts); err != nil {
		return nil, nil, err
	}
	if n := overlapThreads(opts); n > 0 {
		o := opts
		o.IntraOpThreads = n
		if overlap, err = open(o); err != nil {
			_ = destroy(sess)
			return nil, nil, fmt.Errorf("session for overlapping runs: %w", err)
		}
	}
	return sess, overlap, nil
}

// overlapThreads is the intra-op threads of a run that overlaps another:
// the model's threads shared among its concurrent runs. 0: overlapping
// runs need no session of their own (one run at a time, a GPU, or no
// threads to share).
func overlapThreads(opts Options) int {
	runs := opts.Batching.ConcurrentRuns // filled by Open
	if !opts.Batching.Enabled() || runs < 2 || (opts.Device != "" && opts.Device != DeviceCPU) {
		return 0
	}
	total := cmp.Or(opts.IntraOpThreads, runtime.NumCPU())
	if n := max(1, total/runs); n < total {
		return n
	}
	return 0
}

// destroy frees sessions, skipping nil ones.
func destroy(sessions ...*ort.DynamicAdvancedSession) error {
	var errs []error
	for _, s := range sessions {
		if s != nil {
			errs = append(errs, s.Destroy())
		}
	}
	return errors.Join(errs...)
}

// sessionFor is the session of a run: overlap when the run overlaps
// another and the model has one.
func (m *Model) sessionFor(overlapping bool) *ort.DynamicAdvancedSession {
	if overlapping && m.overlap != nil {
		return m.overlap
	}
	return m.session
}
