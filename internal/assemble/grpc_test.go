package assemble

import (
	"context"
	"net"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/chorusml/chorus/protocol/oippb"
)

// readyRecorder answers ModelReady and keeps the traceparent it was sent.
type readyRecorder struct {
	oippb.UnimplementedGRPCInferenceServiceServer
	got chan string
}

func (r *readyRecorder) ModelReady(ctx context.Context, _ *oippb.ModelReadyRequest) (*oippb.ModelReadyResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tp := ""
	if v := md.Get("traceparent"); len(v) > 0 {
		tp = v[0]
	}
	r.got <- tp
	return &oippb.ModelReadyResponse{Ready: true}, nil
}

// A call to a gRPC replica is a client span of the caller's trace, and the
// remote receives that trace in its metadata.
func TestTraceCallsCarriesTraceContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &readyRecorder{got: make(chan string, 1)}
	g := grpc.NewServer()
	oippb.RegisterGRPCInferenceServiceServer(g, rec)
	served := make(chan struct{})
	go func() { defer close(served); _ = g.Serve(ln) }()
	defer func() { g.Stop(); <-served }()

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(traceCalls(tp, propagation.TraceContext{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := oippb.NewGRPCInferenceServiceClient(conn).ModelReady(ctx, &oippb.ModelReadyRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	got := <-rec.got
	trace := parent.SpanContext().TraceID().String()
	if len(got) < 36 || got[3:35] != trace {
		t.Fatalf("remote got traceparent %q, want trace %s", got, trace)
	}
	found := false
	for _, s := range spans.Ended() {
		found = found || s.Name() == oippb.GRPCInferenceService_ModelReady_FullMethodName && s.Parent().SpanID() == parent.SpanContext().SpanID()
	}
	if !found {
		t.Fatal("no client span under the request's span")
	}
}
