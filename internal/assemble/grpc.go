package assemble

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/chorusml/chorus/backends/oipgrpc"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/protocol"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// grpcBackend is a remote replica with protocol: grpc. Its TLS settings
// are the HTTP client's (https:// URLs), so both protocols read tls: alike.
func (b *builder) grpcBackend(mc config.Model, rc config.Replica, client *http.Client) (protocol.Predictor, string, error) {
	u, err := url.Parse(rc.URL)
	if err != nil {
		return nil, "", fmt.Errorf("replica url: %w", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	var tc *tls.Config
	if u.Scheme == "https" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if tr, ok := client.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
			tc = tr.TLSClientConfig.Clone()
		}
	}
	var dial []grpc.DialOption
	if b.Tracing.Enabled() {
		dial = append(dial, grpc.WithUnaryInterceptor(traceCalls(b.Tracing.Provider, telemetry.Propagator)))
	}
	be, err := oipgrpc.New(oipgrpc.Config{Target: target, TLS: tc, Model: rc.Model, Logits: rc.Logits, OutputName: rc.Output,
		Labels: mc.Labels, Revision: rc.Revision, Timeout: time.Duration(rc.Timeout), Headers: rc.Headers, DialOptions: dial})
	if err != nil {
		return nil, "", err
	}
	return be, be.Name(), nil
}

// traceCalls makes a client span per remote call and puts the trace
// context in its metadata, so that a Chorus predictor behind us continues
// the same trace (what otelhttp does for HTTP replicas).
func traceCalls(tp trace.TracerProvider, prop propagation.TextMapPropagator) grpc.UnaryClientInterceptor {
	tracer := tp.Tracer("github.com/chorusml/chorus/backends/oipgrpc")
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindClient))
		defer span.End()
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		prop.Inject(ctx, telemetry.MetadataCarrier(md))
		err := invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}
