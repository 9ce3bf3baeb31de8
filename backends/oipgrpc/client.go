package oipgrpc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// How a remote returns raw logits (the same choices as the HTTP backend).
const (
	// LogitsKServe: output-0 is BYTES "{0: x, 1: y}" strings, KServe's
	// Hugging Face server with --return_raw_logits.
	LogitsKServe = "kserve"
	// LogitsTensor: an FP32 output OutputName of shape [n, k] (Chorus).
	LogitsTensor = "tensor"
)

// Config says how to reach one remote predictor over gRPC.
type Config struct {
	// Target is host:port.
	Target string
	// TLS, when set, secures the connection; nil is plaintext (h2c), as
	// inside a cluster.
	TLS *tls.Config
	// Model is the model's name on the remote.
	Model string
	// Logits is LogitsKServe or LogitsTensor.
	Logits string
	// OutputName is the tensor holding logits (LogitsTensor). Default "logits".
	OutputName string
	// Labels are the model's labels: the protocol does not carry them.
	Labels []string
	// Revision is the remote model's declared version; with the model name
	// and labels it makes the fingerprint the cache keys logits by.
	Revision string
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// Headers are sent as gRPC metadata with every call (e.g.
	// "authorization"), keys lowercased.
	Headers map[string]string
	// MaxResponseBytes bounds a response message. Default 64 MiB.
	MaxResponseBytes int
	// DialOptions are added to the connection's, e.g. an interceptor that
	// carries trace context (the caller owns tracing). Default none.
	DialOptions []grpc.DialOption
}

// Backend is a remote predictor reached over gRPC.
type Backend struct {
	cfg         Config
	conn        *grpc.ClientConn
	client      oippb.GRPCInferenceServiceClient
	md          metadata.MD
	fingerprint string
}

var _ protocol.Predictor = (*Backend)(nil)

// New checks cfg and prepares a connection; it does not contact the remote
// (gRPC connects lazily and reconnects on its own).
func New(cfg Config) (*Backend, error) {
	switch {
	case cfg.Target == "":
		return nil, errors.New("grpc backend: target host:port is required")
	case cfg.Model == "":
		return nil, errors.New("grpc backend: model name is required")
	case cfg.Logits != LogitsKServe && cfg.Logits != LogitsTensor:
		return nil, fmt.Errorf("grpc backend: logits %q, want %s or %s", cfg.Logits, LogitsKServe, LogitsTensor)
	case len(cfg.Labels) == 0:
		return nil, errors.New("grpc backend: labels are required")
	}
	if cfg.OutputName == "" {
		cfg.OutputName = protocol.OutputLogits
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 64 << 20
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxResponseBytes))}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Target, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpc backend %s: %w", cfg.Target, err)
	}
	md := metadata.MD{}
	for k, v := range cfg.Headers {
		md.Set(strings.ToLower(k), v)
	}
	h := sha256.New()
	// The same fingerprint as the HTTP backend's for the same model: how
	// logits travel does not change them.
	fmt.Fprintf(h, "remote\nmodel=%s\nrevision=%s\nlabels=%q\n", cfg.Model, cfg.Revision, cfg.Labels)
	return &Backend{cfg: cfg, conn: conn, client: oippb.NewGRPCInferenceServiceClient(conn), md: md,
		fingerprint: hex.EncodeToString(h.Sum(nil))}, nil
}

// Metadata reports the declared labels and fingerprint.
func (b *Backend) Metadata() protocol.ModelMetadata {
	return protocol.ModelMetadata{Labels: b.cfg.Labels, Fingerprint: b.fingerprint, Platform: "remote_grpc"}
}

// Close closes the connection.
func (b *Backend) Close() error { return b.conn.Close() }

// Name is how logs and errors name this replica.
func (b *Backend) Name() string { return "grpc://" + b.cfg.Target + "/" + b.cfg.Model }

func (b *Backend) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	md := b.md.Copy()
	if id := protocol.RequestID(ctx); id != "" {
		md.Set("x-request-id", id)
	}
	attempt, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	return metadata.NewOutgoingContext(attempt, md), cancel
}

// valid reads invalid UTF-8 as U+FFFD, as the JSON of the HTTP backends
// does: raw bytes would reach the remote as they are.
func valid(texts []string) []string {
	var out []string // a copy, made only when a text changes
	for i, t := range texts {
		if v := protocol.ValidUTF8(t); v != t {
			if out == nil {
				out = slices.Clone(texts)
			}
			out[i] = v
		}
	}
	if out == nil {
		return texts
	}
	return out
}

// Predict sends the texts as one raw BYTES tensor and reads the logits.
func (b *Backend) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	if len(texts) == 0 {
		return protocol.Logits{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	want := protocol.OutputDefault
	if b.cfg.Logits == LogitsTensor {
		want = b.cfg.OutputName
	}
	req := &oippb.ModelInferRequest{
		ModelName: b.cfg.Model, Id: protocol.RequestID(ctx),
		Inputs:           []*oippb.ModelInferRequest_InferInputTensor{{Name: "input-0", Datatype: protocol.DatatypeBYTES, Shape: []int64{int64(len(texts))}}},
		Outputs:          []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: want}},
		RawInputContents: [][]byte{protocol.AppendBytesTensor(nil, valid(texts))},
	}
	attempt, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.client.ModelInfer(attempt, req)
	if err != nil {
		return nil, b.callError(ctx, attempt, err)
	}
	logits, err := b.decode(resp, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if err := protocol.CheckShape(logits, len(texts), len(b.cfg.Labels)); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", b.Name(), protocol.ErrBadGateway, err) //nolint:errorlint // detail
	}
	return logits, nil
}

// decode finds output want, raw or typed, and reads logits from it.
func (b *Backend) decode(resp *oippb.ModelInferResponse, want string) (protocol.Logits, error) {
	raw := resp.GetRawOutputContents()
	for i, o := range resp.GetOutputs() {
		if o.GetName() != want {
			continue
		}
		n := int64(1)
		for _, d := range o.GetShape() {
			if d < 0 || d > 1<<31 {
				return nil, fmt.Errorf("%w: output %q has shape %v", protocol.ErrBadGateway, want, o.GetShape())
			}
			n *= d
			if n > 1<<31 {
				return nil, fmt.Errorf("%w: output %q has shape %v", protocol.ErrBadGateway, want, o.GetShape())
			}
		}
		if b.cfg.Logits == LogitsKServe {
			if o.GetDatatype() != protocol.DatatypeBYTES {
				return nil, fmt.Errorf("%w: output %q is %s, want BYTES string-dicts of logits (is the remote running with --return_raw_logits?)", protocol.ErrBadGateway, want, o.GetDatatype())
			}
			var strs []string
			if i < len(raw) {
				var err error
				if strs, err = protocol.DecodeBytesTensor(raw[i], n); err != nil {
					return nil, fmt.Errorf("%w: output %q: %w", protocol.ErrBadGateway, want, err)
				}
			} else {
				for _, s := range o.GetContents().GetBytesContents() {
					strs = append(strs, string(s))
				}
			}
			out := make(protocol.Logits, len(strs))
			for j, s := range strs {
				row, err := protocol.ParsePyDict(s)
				if err != nil {
					return nil, fmt.Errorf("output %q[%d]: %w", want, j, err)
				}
				out[j] = row
			}
			return out, nil
		}
		shape := o.GetShape()
		if o.GetDatatype() != protocol.DatatypeFP32 || len(shape) != 2 || shape[1] <= 0 {
			return nil, fmt.Errorf("%w: output %q is %s %v, want FP32 [n, k]", protocol.ErrBadGateway, want, o.GetDatatype(), shape)
		}
		var flat []float32
		if i < len(raw) {
			var err error
			if flat, err = protocol.DecodeFP32(raw[i], n); err != nil {
				return nil, fmt.Errorf("%w: output %q: %w", protocol.ErrBadGateway, want, err)
			}
		} else {
			flat = o.GetContents().GetFp32Contents()
		}
		if int64(len(flat)) != n {
			return nil, fmt.Errorf("%w: output %q has shape %v but %d values", protocol.ErrBadGateway, want, shape, len(flat))
		}
		k := int(shape[1])
		out := make(protocol.Logits, shape[0])
		for j := range out {
			out[j] = flat[j*k : (j+1)*k]
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: response has no output %q", protocol.ErrBadGateway, want)
}

// callError maps a failed call as the HTTP backend maps statuses: the
// client went away (not retryable), our attempt timed out, the remote
// refused the request (the client sees 400), or it cannot serve now.
func (b *Backend) callError(ctx, attempt context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", b.Name(), ctx.Err())
	}
	st, _ := status.FromError(err)
	msg := protocol.Clip(st.Message(), 200)
	switch st.Code() {
	case codes.DeadlineExceeded:
		if attempt.Err() != nil {
			return fmt.Errorf("%s: %w after %v", b.Name(), protocol.ErrGatewayTimeout, b.cfg.Timeout)
		}
		return fmt.Errorf("%s answered %s: %s: %w", b.Name(), st.Code(), msg, protocol.ErrGatewayTimeout)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: the predictor refused the request: %s", protocol.ErrInvalidInput, msg)
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		// Unavailable is also what a closed port or a reset gives.
		return fmt.Errorf("%s: %s: %s: %w", b.Name(), st.Code(), msg, protocol.ErrUnavailable)
	default:
		return fmt.Errorf("%s answered %s: %s: %w", b.Name(), st.Code(), msg, protocol.ErrBadGateway)
	}
}

// Ready asks the remote whether the model can serve (ModelReady), for
// active health checks.
func (b *Backend) Ready(ctx context.Context) error {
	attempt, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.client.ModelReady(attempt, &oippb.ModelReadyRequest{Name: b.cfg.Model})
	if err != nil {
		return fmt.Errorf("health: %w", b.callError(ctx, attempt, err))
	}
	if !resp.GetReady() {
		return fmt.Errorf("%s: health: not ready: %w", b.Name(), protocol.ErrUnavailable)
	}
	return nil
}
