package assemble

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/storage"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// builder turns replica configs into backends, sharing one HTTP client
// (and so one connection pool) per TLS setting.
type builder struct {
	Deps
	clients map[config.TLS]*http.Client
	open    []protocol.Predictor // opened, not yet owned by a model
	cache   config.Cache         // where chunking models keep window logits
}

func (b *builder) tracer() trace.Tracer {
	return b.Tracing.Provider.Tracer("github.com/chorusml/chorus")
}

func (b *builder) closeOpen() {
	for _, p := range b.open {
		_ = p.Close()
	}
	b.open = nil
}

func (b *builder) pool(ctx context.Context, mc config.Model, vc config.Version) (*pool.Pool, error) {
	var rs []*pool.Replica
	for i, rc := range vc.Replicas {
		path := fmt.Sprintf("models[%s].replicas[%d]", mc.Name, i)
		if vc.Name != "" && len(mc.Versions) > 0 {
			path = fmt.Sprintf("models[%s].versions[%s].replicas[%d]", mc.Name, vc.Name, i)
		}
		p, name, err := b.backend(ctx, mc, rc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b.open = append(b.open, p)
		rs = append(rs, pool.NewReplica(name, rc.Weight, p))
	}
	pc := mc.Pool
	return pool.New(rs, pool.Options{
		Tracer:              b.tracer(),
		Policy:              pc.Policy,
		Attempts:            pc.Attempts,
		Budget:              time.Duration(pc.Budget),
		MaxInFlight:         pc.MaxInFlight,
		EjectAfter:          pc.Ejection.After,
		EjectFor:            time.Duration(pc.Ejection.Base),
		EjectMax:            time.Duration(pc.Ejection.Max),
		BreakerMinRequests:  uint32(pc.Breaker.MinRequests),
		BreakerFailureRatio: pc.Breaker.FailureRatio,
		BreakerWindow:       time.Duration(pc.Breaker.Window),
		BreakerTimeout:      time.Duration(pc.Breaker.Timeout),
		HealthInterval:      time.Duration(pc.Health.Interval),
		HealthTimeout:       time.Duration(pc.Health.Timeout),
		Fall:                pc.Health.Fall,
		Rise:                pc.Health.Rise,
	})
}

func (b *builder) backend(ctx context.Context, mc config.Model, rc config.Replica) (protocol.Predictor, string, error) {
	if rc.Type == config.TypeKServe {
		client, err := b.client(rc.TLS)
		if err != nil {
			return nil, "", err
		}
		if rc.Protocol == config.ProtocolGRPC {
			return b.grpcBackend(mc, rc, client)
		}
		k, err := kserve.New(kserve.Config{URL: rc.URL, Model: rc.Model, Protocol: rc.Protocol, Logits: rc.Logits,
			OutputName: rc.Output, Labels: mc.Labels, Revision: rc.Revision, Timeout: time.Duration(rc.Timeout),
			Headers: rc.Headers, Client: client})
		if err != nil {
			return nil, "", err
		}
		return k, k.Name(), nil
	}
	loc, err := rc.Location()
	if err != nil {
		return nil, "", err
	}
	dir, err := storage.ResolveGraph(ctx, loc, b.Hub, rc.ONNXFile)
	if err != nil {
		return nil, "", err
	}
	var batching onnx.Batching // zero: off
	if rb := rc.Batching; rb.Enabled == nil || *rb.Enabled {
		batching = onnx.Batching{MaxBatchSize: rb.MaxBatchSize, MaxBatchTokens: rb.MaxBatchTokens,
			MaxQueueDelay: time.Duration(rb.MaxQueueDelay), QueueSize: rb.QueueSize, ConcurrentRuns: rb.ConcurrentRuns}
		if rb.GatherGap != nil {
			batching.GatherGap = time.Duration(*rb.GatherGap)
		}
	}
	tokDir, err := tokenizerDir(ctx, rc, b.Hub)
	if err != nil {
		return nil, "", err
	}
	m, err := b.Runtime.Open(dir, onnx.Options{LowerCase: rc.LowerCase, NoSpecialTokens: !*rc.SpecialTokens,
		Dtype: rc.Dtype, TokenizerDir: tokDir, MaxLength: rc.MaxLength, GraphFile: rc.ONNXFile, IntraOpThreads: rc.IntraOpThreads,
		InterOpThreads: rc.InterOpThreads, IntraOpSpin: (*time.Duration)(rc.IntraOpSpin), GraphOptimization: rc.GraphOptimization, MemoryArena: rc.MemoryArena,
		Device: rc.Device, Batching: batching,
		Observer: b.observer(mc.Name), Tracer: b.tracer(), MaxRequestTokens: rc.MaxRequestTokens, LongText: b.longText(mc)})
	if err != nil {
		return nil, "", err
	}
	return m, "onnx:" + loc.String(), nil
}

// observer is the model's run metrics, or none (a nil *ModelObserver would
// be a non-nil interface).
func (b *builder) observer(model string) onnx.Observer {
	if b.Metrics == nil {
		return nil
	}
	return b.Metrics.ModelObserver(model)
}

func (b *builder) client(t config.TLS) (*http.Client, error) {
	if c, ok := b.clients[t]; ok {
		return c, nil
	}
	tr := kserve.NewTransport()
	if t != (config.TLS{}) {
		tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, for tests
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.ca_file %s: no certificates", t.CAFile)
			}
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	var rt http.RoundTripper = tr
	if b.Tracing.Enabled() {
		// A span per remote attempt, and the trace context on the wire so
		// that a Chorus predictor behind us continues the same trace.
		rt = otelhttp.NewTransport(tr, otelhttp.WithTracerProvider(b.Tracing.Provider), otelhttp.WithPropagators(telemetry.Propagator))
	}
	c := &http.Client{Transport: rt}
	b.clients[t] = c
	return c, nil
}

// tokenizerDir fetches the tokenizer's revision when it differs from the
// model's ("" when it does not).
func tokenizerDir(ctx context.Context, rc config.Replica, hub *storage.Hub) (string, error) {
	loc, err := rc.Location()
	if err != nil || rc.TokenizerRevision == "" || !loc.IsHub() || rc.TokenizerRevision == loc.Revision {
		return "", err
	}
	dir, err := hub.Snapshot(ctx, loc.Repo, rc.TokenizerRevision)
	if err != nil {
		return "", fmt.Errorf("tokenizer revision %s: %w", rc.TokenizerRevision, err)
	}
	return dir, nil
}
