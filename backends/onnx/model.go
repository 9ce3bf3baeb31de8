package onnx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chorusml/chorus/protocol"
)

// Model serves one model folder. It is safe for concurrent use: ONNX
// Runtime sessions and HF tokenizers both allow concurrent calls.
type Model struct {
	session *ort.DynamicAdvancedSession
	// overlap runs batches while another run is in progress, on a share
	// of the threads (Batching.ConcurrentRuns); nil: session runs them.
	overlap    *ort.DynamicAdvancedSession
	tok        *hfTokenizer
	inputNames []string
	withTypes  bool
	padID      int64
	meta       protocol.ModelMetadata
	batcher    *batcher // nil: every request runs as its own batch
	maxTokens  int
	chunk      *chunker // nil: texts are truncated
	observer   Observer
	tracer     trace.Tracer

	// mu guards closed: Predict holds it shared so Close waits for
	// in-flight runs instead of freeing a session under them.
	mu     sync.RWMutex
	closed bool
}

var _ protocol.Predictor = (*Model)(nil)

// graph inputs Chorus knows how to feed.
const (
	inputIDs      = "input_ids"
	attentionMask = "attention_mask"
	tokenTypeIDs  = "token_type_ids"
)

// Open loads the model folder at dir.
func (r *Runtime) Open(dir string, opts Options) (*Model, error) {
	f, err := readFolder(dir, opts.GraphFile)
	if err != nil {
		return nil, err
	}
	if err := f.applyOptions(opts); err != nil {
		return nil, err
	}
	maxLen, err := safeMaxLength(f, opts.MaxLength)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}

	m := &Model{padID: f.padID}
	outName, err := m.readGraphIO(f.graphPath)
	if err != nil {
		return nil, err
	}

	tok, err := newHFTokenizer(f.tokenizerJSON, maxLen, f.truncateLeft, !opts.NoSpecialTokens)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer from %s: %w", dir, err)
	}
	if opts.Batching.Enabled() { // once, for the sessions and the batcher alike
		opts.Batching = opts.Batching.withDefaults(opts.Device)
	}
	sess, overlap, err := openSessions(f.graphPath, m.inputNames, outName, opts)
	if err != nil {
		tok.close()
		return nil, err
	}
	fp, err := fingerprint(f, maxLen, !opts.NoSpecialTokens)
	if err != nil {
		_ = destroy(sess, overlap)
		tok.close()
		return nil, err
	}
	m.session, m.overlap, m.tok, m.observer, m.tracer, m.maxTokens = sess, overlap, tok, opts.Observer, opts.Tracer, opts.MaxRequestTokens
	if m.tracer == nil {
		m.tracer = noop.NewTracerProvider().Tracer("")
	}
	if opts.Batching.Enabled() {
		m.batcher = newBatcher(m, opts.Batching)
	}
	m.meta = protocol.ModelMetadata{
		Labels:      f.labels,
		MaxLength:   maxLen,
		Fingerprint: fp,
		Platform:    "onnxruntime_onnx",
		Activation:  f.activation,
	}
	if opts.LongText != nil {
		if m.chunk, err = m.newChunker(f.tokenizerJSON, *opts.LongText, !opts.NoSpecialTokens); err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		m.meta.Fingerprint = m.chunk.fingerprint(m.meta.Fingerprint)
	}
	return m, nil
}

// readGraphIO checks the graph's inputs (which of input_ids,
// attention_mask, token_type_ids it takes) and returns the output to read:
// "logits", else the first.
func (m *Model) readGraphIO(graphPath string) (string, error) {
	inputs, outputs, err := ort.GetInputOutputInfo(graphPath)
	if err != nil {
		return "", fmt.Errorf("read graph %s: %w", graphPath, err)
	}
	for _, in := range inputs {
		switch in.Name {
		case inputIDs, attentionMask:
		case tokenTypeIDs:
			m.withTypes = true
		default:
			return "", fmt.Errorf("graph %s takes input %q, which Chorus cannot feed (known: %s, %s, %s)", graphPath, in.Name, inputIDs, attentionMask, tokenTypeIDs)
		}
		m.inputNames = append(m.inputNames, in.Name)
	}
	if !slices.Contains(m.inputNames, inputIDs) {
		return "", fmt.Errorf("graph %s has no %s input", graphPath, inputIDs)
	}
	outName := ""
	for _, o := range outputs {
		if o.Name == "logits" {
			outName = o.Name
		}
	}
	if outName == "" && len(outputs) > 0 {
		outName = outputs[0].Name
	}
	if outName == "" {
		return "", fmt.Errorf("graph %s has no outputs", graphPath)
	}
	return outName, nil
}

// safeMaxLength is the truncation length: the smallest of the configured
// max_length, the tokenizer's model_max_length and what the positions take,
// so that no text of any length can index past the position embeddings.
func safeMaxLength(f *folder, configured int) (int, error) {
	if configured > 0 && f.positions > 0 && configured > f.positions {
		return 0, fmt.Errorf("max_length %d exceeds %s", configured, f.positionsWhy)
	}
	n := 0
	for _, l := range []int{configured, f.modelMaxLength, f.positions} {
		if l > 0 && (n == 0 || l < n) {
			n = l
		}
	}
	if n == 0 {
		return 0, errors.New("neither config.json (max_position_embeddings) nor tokenizer_config.json (model_max_length) bounds the length; set max_length")
	}
	return n, nil
}

// Metadata describes the served model.
func (m *Model) Metadata() protocol.ModelMetadata { return m.meta }

// Tokenize returns the token ids the model is fed for text, after
// truncation, before padding.
func (m *Model) Tokenize(text string) ([]int64, error) {
	enc, err := m.encode(text)
	return enc.ids, err
}

// encode tokenizes one text; every character, NUL included, reaches the
// tokenizer.
func (m *Model) encode(text string) (encoding, error) {
	return m.checked(m.tok.encode(text, "", false, m.withTypes))
}

// encodePair tokenizes a text pair as transformers does for the model's
// tokenizer (its post-processor's pair template; truncation longest_first).
// An empty second text makes no pair: transformers' tokenizer call and
// text-classification pipeline then encode the first text alone.
func (m *Model) encodePair(a, b string) (encoding, error) {
	return m.checked(m.tok.encode(a, b, b != "", m.withTypes))
}

func (m *Model) checked(enc encoding, err error) (encoding, error) {
	if err != nil {
		return enc, fmt.Errorf("%w: %w", protocol.ErrInvalidInput, err)
	}
	if len(enc.ids) == 0 {
		return enc, fmt.Errorf("tokenizer produced no tokens: %w", protocol.ErrInvalidInput)
	}
	return enc, nil
}

// Prediction is a scored batch and what truncation did to it.
type Prediction struct {
	Logits protocol.Logits
	// Truncated lists, ascending, the inputs that were cut to
	// Metadata().MaxLength tokens.
	Truncated []int
}

// Predict implements protocol.Predictor: it tokenizes the texts, then runs
// them — through the dynamic batcher when one is configured, else as one
// batch padded to its longest text.
func (m *Model) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	p, err := m.PredictTexts(ctx, texts)
	return p.Logits, err
}

// PredictTexts is Predict, also saying which texts were truncated.
func (m *Model) PredictTexts(ctx context.Context, texts []string) (Prediction, error) {
	if m.chunk != nil {
		return m.predictChunked(ctx, texts)
	}
	return m.predict(ctx, len(texts), func(i int) (encoding, error) { return m.encode(texts[i]) })
}

// predict tokenizes n inputs with encode and runs them.
func (m *Model) predict(ctx context.Context, n int, encode func(i int) (encoding, error)) (Prediction, error) {
	if n == 0 {
		return Prediction{Logits: protocol.Logits{}}, nil
	}
	if err := ctx.Err(); err != nil {
		return Prediction{}, fmt.Errorf("predict: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Prediction{}, fmt.Errorf("predict: model closed: %w", protocol.ErrUnavailable)
	}
	// The request's timing record (the gateway's timing headers), if any.
	timing := protocol.TimingFrom(ctx)
	// Tokenize in the caller's goroutine, so concurrent requests tokenize
	// in parallel.
	_, span := m.tracer.Start(ctx, "chorus.tokenize")
	if span.IsRecording() { // attributes allocate: only for a span that keeps them
		span.SetAttributes(attribute.Int("chorus.texts", n))
	}
	start := time.Now()
	encs := make([]encoding, n)
	var truncated []int
	total := 0
	for i := range encs {
		enc, err := encode(i)
		if err != nil {
			span.End()
			return Prediction{}, fmt.Errorf("text %d: %w", i, err)
		}
		encs[i] = enc
		total += len(enc.ids)
		if enc.truncated {
			truncated = append(truncated, i)
		}
	}
	span.End()
	timing.AddTokenization(time.Since(start), total)
	// The request's truncation record: it may ask us to refuse instead.
	trunc := protocol.TruncationFrom(ctx)
	if trunc.Refusing() && len(truncated) > 0 {
		return Prediction{}, fmt.Errorf("%w: input %d is longer than the model's %d tokens (parameters.truncate is false)", protocol.ErrTooLarge, truncated[0], m.meta.MaxLength)
	}
	if m.maxTokens > 0 && total > m.maxTokens {
		return Prediction{}, fmt.Errorf("%w: %d tokens in one request, the limit is %d", protocol.ErrTooLarge, total, m.maxTokens)
	}
	if err := ctx.Err(); err != nil {
		return Prediction{}, fmt.Errorf("predict: %w", err)
	}
	var logits protocol.Logits
	var err error
	if m.batcher != nil {
		logits, err = m.batcher.submit(ctx, encs)
	} else {
		start = time.Now()
		logits, err = m.runBatch(ctx, m.session, encs, 0)
		timing.AddQueue(0) // no queue without batching
		timing.AddInference(time.Since(start))
	}
	if err != nil {
		return Prediction{}, err
	}
	trunc.Report(truncated)
	return Prediction{Logits: logits, Truncated: truncated}, nil
}

// runBatch runs encoded texts as one batch padded to the longest; waited is
// how long its oldest text queued, for the observer.
func (m *Model) runBatch(ctx context.Context, sess *ort.DynamicAdvancedSession, encs []encoding, waited time.Duration, links ...trace.Link) (protocol.Logits, error) {
	_, span := m.tracer.Start(ctx, "chorus.onnx.run", trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("chorus.batch_size", len(encs)))
	}
	defer span.End()
	start := time.Now()
	if m.observer != nil {
		defer func() { m.observer.ObserveRun(len(encs), waited, time.Since(start)) }()
	}
	seqLen := 0
	for _, e := range encs {
		seqLen = max(seqLen, len(e.ids))
	}
	inputs, err := m.tensors(encs, seqLen)
	defer func() {
		for _, v := range inputs {
			v.Destroy()
		}
	}()
	if err != nil {
		return nil, err
	}
	return m.run(ctx, sess, inputs, len(encs))
}

// tensors builds the graph inputs, in the order the session was created
// with, padding every row to seqLen.
func (m *Model) tensors(encs []encoding, seqLen int) ([]ort.Value, error) {
	n := len(encs)
	shape := ort.NewShape(int64(n), int64(seqLen))
	ids := make([]int64, n*seqLen)
	mask := make([]int64, n*seqLen)
	var types []int64
	if m.withTypes {
		types = make([]int64, n*seqLen)
	}
	for i, e := range encs {
		row := i * seqLen
		for j := range seqLen {
			if j < len(e.ids) {
				ids[row+j] = e.ids[j]
				mask[row+j] = e.mask[j]
				if types != nil && j < len(e.typeIDs) {
					types[row+j] = e.typeIDs[j]
				}
			} else {
				ids[row+j] = m.padID
			}
		}
	}
	data := map[string][]int64{inputIDs: ids, attentionMask: mask, tokenTypeIDs: types}
	vals := make([]ort.Value, 0, len(m.inputNames))
	for _, name := range m.inputNames {
		t, err := ort.NewTensor(shape, data[name])
		if err != nil {
			return vals, fmt.Errorf("build %s tensor: %w", name, err)
		}
		vals = append(vals, t)
	}
	return vals, nil
}

// run executes the graph; cancelling ctx terminates the run in ONNX Runtime.
func (m *Model) run(ctx context.Context, sess *ort.DynamicAdvancedSession, inputs []ort.Value, n int) (protocol.Logits, error) {
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("run options: %w", err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { _ = ro.Terminate() })
	defer stop()

	outputs := []ort.Value{nil} // nil: ONNX Runtime allocates the output
	if err := sess.RunWithOptions(inputs, outputs, ro); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("onnxruntime run: %w", ctx.Err())
		}
		return nil, fmt.Errorf("onnxruntime run: %w", err)
	}
	defer outputs[0].Destroy()
	out, ok := outputs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("graph output is %T, want a float32 tensor", outputs[0])
	}
	shape := out.GetShape()
	k := len(m.meta.Labels)
	if len(shape) != 2 || shape[0] != int64(n) || shape[1] != int64(k) {
		return nil, fmt.Errorf("graph output has shape %v, want [%d %d]", shape, n, k)
	}
	data := out.GetData()
	logits := make(protocol.Logits, n)
	for i := range logits {
		logits[i] = slices.Clone(data[i*k : (i+1)*k])
	}
	return logits, nil
}

// Close waits for in-flight predictions, then frees the session and
// tokenizer. It is safe to call more than once.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	// In-flight requests hold the read lock until answered, so the batcher
	// is idle by now: stop its loop before the session goes.
	if m.batcher != nil {
		m.batcher.close()
	}
	m.tok.close()
	m.chunk.close()
	if err := destroy(m.session, m.overlap); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	return nil
}
