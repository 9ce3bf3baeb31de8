package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/chorusml/chorus/backends/oipgrpc"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/protocol"
)

// grpcListener is the OIP gRPC server beside the HTTP one.
type grpcListener struct {
	srv  *grpc.Server
	errc chan error
}

// startGRPC listens on server.grpc_port and serves srv's gRPC service;
// port 0 means no gRPC (a nil listener, whose methods do nothing).
func startGRPC(cfg *config.Config, srv *gateway.Server, log *slog.Logger) (*grpcListener, error) {
	port := cfg.Server.GRPC()
	if port == 0 {
		return nil, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Server.Host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listen grpc: %w", err)
	}
	g := &grpcListener{srv: srv.NewGRPCServer(), errc: make(chan error, 1)}
	go func() { g.errc <- g.srv.Serve(ln) }()
	log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("protocol", "grpc"))
	return g, nil
}

// errs yields the server's failure (never, for no listener).
func (g *grpcListener) errs() <-chan error {
	if g == nil {
		return nil
	}
	return g.errc
}

// drain lets calls in flight finish, new ones being refused, until ctx
// ends; then it cuts the rest. The channel closes when it is done.
func (g *grpcListener) drain(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if g == nil {
		close(done)
		return done
	}
	graceful := make(chan struct{})
	go func() { g.srv.GracefulStop(); close(graceful) }()
	go func() {
		defer close(done)
		select {
		case <-graceful:
		case <-ctx.Done():
			g.srv.Stop()
			<-graceful
		}
	}()
	return done
}

// close stops at once (an early return before the drain).
func (g *grpcListener) close() {
	if g != nil {
		g.srv.Stop()
	}
}

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
	if b.tracing.Enabled() {
		dial = append(dial, grpc.WithUnaryInterceptor(traceCalls(b.tracing.Provider, telemetry.Propagator)))
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
		prop.Inject(ctx, mdCarrier(md))
		err := invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// mdCarrier lets a propagator write gRPC metadata (lowercase keys, as
// HTTP/2 requires; propagation.HeaderCarrier would canonicalise them).
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
