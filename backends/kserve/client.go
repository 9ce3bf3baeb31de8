package kserve

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/chorusml/chorus/protocol"
)

// How a remote returns raw logits.
const (
	// LogitsKServe is KServe's Hugging Face server with --disable_postprocess
	// (or --return_raw_logits): V1 predictions are {"0": x, "1": y} objects,
	// V2 output-0 is BYTES "{0: x, 1: y}" strings.
	LogitsKServe = "kserve"
	// LogitsTensor is an FP32 tensor: V2 output OutputName of shape [n, k],
	// V1 predictions [[x, y], ...] asked for with parameters.output (Chorus).
	LogitsTensor = "tensor"
)

// Protocols are the valid Config.Protocol values; DefaultProtocol is the
// registry's default.
var Protocols = []string{"v1", "v2"}

// LogitsFormats are the valid Config.Logits values.
var LogitsFormats = []string{LogitsKServe, LogitsTensor}

// Defaults of a remote replica. The registry (gateway/config) fills its
// defaults from them.
const (
	DefaultProtocol         = "v2"
	DefaultLogits           = LogitsKServe
	DefaultOutputName       = protocol.OutputLogits
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 64 << 20
)

// Config says how to reach one remote predictor.
type Config struct {
	// URL is the server's base URL, e.g. http://10.0.0.5:8080.
	URL string
	// Model is the model's name on the remote.
	Model string
	// Protocol is "v1" or "v2".
	Protocol string
	// Logits is LogitsKServe or LogitsTensor.
	Logits string
	// OutputName is the V2 tensor holding logits (LogitsTensor). Default
	// DefaultOutputName.
	OutputName string
	// Labels are the model's labels, declared in the registry: remote
	// protocols do not carry them.
	Labels []string
	// Revision is the remote model's declared version (a commit, a tag, an
	// image digest). Change it when the remote model changes: together with
	// the model name and labels it makes the fingerprint the cache keys
	// logits by. It is the same for every replica of a model, not per URL.
	Revision string
	// Timeout bounds one attempt. Default DefaultTimeout.
	Timeout time.Duration
	// Headers are sent with every request (e.g. Host for a KServe ingress).
	Headers map[string]string
	// MaxResponseBytes bounds a response body. Default DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Client sends the requests; share one so connections are pooled and
	// kept alive. Default: a client with its own pooled transport.
	Client *http.Client
}

// Backend is a remote predictor.
type Backend struct {
	cfg         Config
	host        string
	fingerprint string
}

var (
	_ protocol.Predictor     = (*Backend)(nil)
	_ protocol.PairPredictor = (*Backend)(nil)
)

// New checks cfg and returns a backend; it does not contact the remote.
func New(cfg Config) (*Backend, error) {
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	switch {
	case cfg.URL == "":
		return nil, errors.New("kserve backend: URL is required")
	case cfg.Model == "":
		return nil, errors.New("kserve backend: model name is required")
	case !slices.Contains(Protocols, cfg.Protocol):
		return nil, fmt.Errorf("kserve backend: protocol %q, want v1 or v2", cfg.Protocol)
	case !slices.Contains(LogitsFormats, cfg.Logits):
		return nil, fmt.Errorf("kserve backend: logits %q, want %s or %s", cfg.Logits, LogitsKServe, LogitsTensor)
	case len(cfg.Labels) == 0:
		return nil, errors.New("kserve backend: labels are required")
	}
	cfg.OutputName = cmp.Or(cfg.OutputName, DefaultOutputName)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxResponseBytes = cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: NewTransport()}
	}
	h := sha256.New()
	fmt.Fprintf(h, "remote\nmodel=%s\nrevision=%s\nlabels=%q\n", cfg.Model, cfg.Revision, cfg.Labels)
	return &Backend{cfg: cfg, host: cfg.Headers["Host"], fingerprint: hex.EncodeToString(h.Sum(nil))}, nil
}

// NewTransport is a pooled, keep-alive transport sized for a gateway that
// sends many concurrent requests to few hosts.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Metadata reports the declared labels and fingerprint.
func (b *Backend) Metadata() protocol.ModelMetadata {
	return protocol.ModelMetadata{Labels: b.cfg.Labels, Fingerprint: b.fingerprint, Platform: "remote_" + b.cfg.Protocol}
}

// Close releases idle connections.
func (b *Backend) Close() error {
	b.cfg.Client.CloseIdleConnections()
	return nil
}

// Name is how logs and errors name this replica.
func (b *Backend) Name() string { return b.cfg.URL + "/" + b.cfg.Model }

// Predict sends one request to the remote, within the per-attempt timeout.
func (b *Backend) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	return b.send(ctx, len(texts), texts, func(id string, outputs ...string) (protocol.InferRequest, error) {
		return protocol.TextRequest(id, texts, outputs...)
	})
}

// TakesPairs is true for a Chorus remote (Logits: tensor), which scores
// pairs as transformers does. KServe's Hugging Face server (Logits: kserve)
// accepts [a, b] instances but does not score them as pairs: no.
func (b *Backend) TakesPairs() bool { return b.cfg.Logits == LogitsTensor }

// PredictPairs sends text pairs as V1 instances [[a, b], ...] or a V2
// BYTES input of shape [n, 2], as a Chorus gateway takes them; a remote
// that does not take pairs (see TakesPairs) is not asked.
func (b *Backend) PredictPairs(ctx context.Context, pairs [][2]string) (protocol.Logits, error) {
	if !b.TakesPairs() {
		return nil, fmt.Errorf("%w: %s: remote replicas with logits %q take no text pairs (KServe's Hugging Face server would score them as something else); a Chorus remote (logits: %s) does", protocol.ErrInvalidInput, b.Name(), b.cfg.Logits, LogitsTensor)
	}
	return b.send(ctx, len(pairs), pairs, func(id string, outputs ...string) (protocol.InferRequest, error) {
		return protocol.PairRequest(id, pairs, outputs...)
	})
}

// send posts n inputs: instances as the V1 body's instances, or the V2
// request v2 builds; it checks the answer has n rows.
func (b *Backend) send(ctx context.Context, n int, instances any, v2 func(id string, outputs ...string) (protocol.InferRequest, error)) (protocol.Logits, error) {
	if n == 0 {
		return protocol.Logits{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	var (
		path string
		body []byte
		err  error
	)
	// parameters.truncate false travels on: a Chorus remote refuses an
	// over-length input (413) as the gateway was asked to.
	trunc := protocol.TruncationFrom(ctx)
	refuse := trunc.Refusing()
	if b.cfg.Protocol == "v1" {
		path = "/v1/models/" + b.cfg.Model + ":predict"
		req := map[string]any{"instances": instances}
		params := map[string]any{}
		if b.cfg.Logits == LogitsTensor {
			params["output"] = protocol.OutputLogits
		}
		if refuse {
			params["truncate"] = false
		}
		if len(params) > 0 {
			req["parameters"] = params
		}
		body, err = json.Marshal(req)
	} else {
		path = "/v2/models/" + b.cfg.Model + "/infer"
		var outputs []string
		if b.cfg.Logits == LogitsTensor {
			outputs = append(outputs, b.cfg.OutputName)
		}
		var req protocol.InferRequest
		if req, err = v2(protocol.RequestID(ctx), outputs...); err == nil {
			if refuse {
				req.Parameters = map[string]json.RawMessage{"truncate": json.RawMessage("false")}
			}
			body, err = json.Marshal(req)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	resp, err := b.post(ctx, path, body)
	if err != nil {
		return nil, err
	}
	var logits protocol.Logits
	if b.cfg.Protocol == "v1" {
		logits, err = b.decodeV1(resp)
	} else {
		logits, err = b.decodeV2(resp)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if err := protocol.CheckShape(logits, n, len(b.cfg.Labels)); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", b.Name(), protocol.ErrBadGateway, err) //nolint:errorlint // the cause is detail, not a class to match
	}
	trunc.Report(truncatedInputs(resp, n))
	return logits, nil
}

// post sends body and returns the response body of a 200, or an error
// that says whether another replica might do better.
func (b *Backend) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	attempt, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attempt, http.MethodPost, b.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", b.Name(), err)
	}
	b.setHeaders(ctx, req)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		return nil, b.transportError(ctx, attempt, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, b.transportError(ctx, attempt, err)
	}
	if int64(len(data)) > b.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("%s: %w: response larger than %d bytes", b.Name(), protocol.ErrBadGateway, b.cfg.MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, b.statusError(resp.StatusCode, data)
	}
	// A Chorus (or TEI) predictor says where its time went; others leave it unknown.
	protocol.TimingFrom(ctx).AddHeaders(resp.Header)
	return data, nil
}

func (b *Backend) setHeaders(ctx context.Context, req *http.Request) {
	for k, v := range b.cfg.Headers {
		req.Header.Set(k, v)
	}
	if b.host != "" {
		req.Host = b.host // Go sends req.Host, not a Host header
	}
	if id := protocol.RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
}

// transportError classifies a failure to get a response: the client went
// away (not retryable), our attempt timed out, or the remote is unreachable.
func (b *Backend) transportError(ctx, attempt context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", b.Name(), ctx.Err())
	}
	if attempt.Err() != nil {
		return fmt.Errorf("%s: %w after %v", b.Name(), protocol.ErrGatewayTimeout, b.cfg.Timeout)
	}
	// Refused, reset, cut mid-body: the replica is unreachable or broken.
	return fmt.Errorf("%s: %w: %v", b.Name(), protocol.ErrUnavailable, err) //nolint:errorlint // the transport's error is detail, not a class to match
}

// statusError maps the remote's non-200 answer: its 4xx means our request
// was refused (the client sees 400 with the remote's message); 5xx and
// anything odd mean another replica may do better.
func (b *Backend) statusError(code int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var e protocol.ErrorResponse
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	msg = protocol.Clip(msg, 200)
	switch {
	case code == http.StatusBadRequest:
		// The client sees this one: the remote's reason, not its address.
		return fmt.Errorf("%w: the predictor refused the request: %s", protocol.ErrInvalidInput, msg)
	case code == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: the predictor refused the request: %s", protocol.ErrTooLarge, msg)
	case code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests:
		return fmt.Errorf("%s answered %d: %s: %w", b.Name(), code, msg, protocol.ErrUnavailable)
	case code == http.StatusGatewayTimeout:
		return fmt.Errorf("%s answered %d: %s: %w", b.Name(), code, msg, protocol.ErrGatewayTimeout)
	default:
		return fmt.Errorf("%s answered %d: %s: %w", b.Name(), code, msg, protocol.ErrBadGateway)
	}
}

// Ready asks the remote whether the model can serve: GET
// /v2/models/{m}/ready or /v1/models/{m}. Used by active health checks.
func (b *Backend) Ready(ctx context.Context) error {
	path := "/v2/models/" + b.cfg.Model + "/ready"
	if b.cfg.Protocol == "v1" {
		path = "/v1/models/" + b.cfg.Model
	}
	attempt, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attempt, http.MethodGet, b.cfg.URL+path, nil)
	if err != nil {
		return fmt.Errorf("%s: health: %w", b.Name(), err)
	}
	b.setHeaders(ctx, req)
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		return b.transportError(ctx, attempt, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: health: HTTP %d: %w", b.Name(), resp.StatusCode, protocol.ErrUnavailable)
	}
	return nil
}

// FetchMetadata asks a V2 server for a model's metadata: GET
// /v2/models/{model}. Chorus reports labels and its fingerprint in
// parameters (other servers may not).
func FetchMetadata(ctx context.Context, client *http.Client, baseURL, model string) (protocol.ModelMetadataResponse, error) {
	var md protocol.ModelMetadataResponse
	url := strings.TrimRight(baseURL, "/") + "/v2/models/" + model
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return md, fmt.Errorf("model metadata: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return md, fmt.Errorf("model metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return md, fmt.Errorf("model metadata from %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return md, fmt.Errorf("model metadata from %s: HTTP %d: %s", url, resp.StatusCode, protocol.Clip(string(body), 200))
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return md, fmt.Errorf("model metadata from %s: %w", url, err)
	}
	return md, nil
}
