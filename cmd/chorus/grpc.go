package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"google.golang.org/grpc"

	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
)

// grpcListener is the OIP gRPC server beside the HTTP one.
type grpcListener struct {
	srv  *grpc.Server
	errc chan error
}

// startGRPC listens on server.grpc_port and serves srv's gRPC service;
// port 0 means no gRPC (a nil listener, whose methods do nothing).
func startGRPC(cfg *config.Config, srv *gateway.Server, log *slog.Logger) (*grpcListener, error) {
	port := *cfg.Server.GRPCPort
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
