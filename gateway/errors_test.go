package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/chorusml/chorus/protocol"
)

func TestStatusOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("model x: predict: %w", err) }
	cases := []struct {
		err      error
		want     int
		wantGRPC codes.Code
	}{
		{wrap(protocol.ErrInvalidInput), http.StatusBadRequest, codes.InvalidArgument},
		{wrap(protocol.ErrTooLarge), http.StatusRequestEntityTooLarge, codes.ResourceExhausted},
		{wrap(&http.MaxBytesError{Limit: 10}), http.StatusRequestEntityTooLarge, codes.ResourceExhausted},
		{wrap(protocol.ErrModelNotFound), http.StatusNotFound, codes.NotFound},
		{wrap(errUnknownAnswer), http.StatusNotFound, codes.NotFound},
		{wrap(protocol.ErrNotReady), http.StatusServiceUnavailable, codes.Unavailable},
		{wrap(protocol.ErrUnavailable), http.StatusServiceUnavailable, codes.Unavailable},
		{wrap(protocol.ErrBadGateway), http.StatusBadGateway, codes.Unavailable},
		{wrap(protocol.ErrGatewayTimeout), http.StatusGatewayTimeout, codes.DeadlineExceeded},
		{wrap(protocol.ErrUnauthorized), http.StatusUnauthorized, codes.Unauthenticated},
		{wrap(protocol.ErrForbidden), http.StatusForbidden, codes.PermissionDenied},
		{wrap(protocol.ErrRateLimited), http.StatusTooManyRequests, codes.ResourceExhausted},
		{wrap(protocol.ErrOverloaded), http.StatusServiceUnavailable, codes.Unavailable},
		{wrap(protocol.ErrNotImplemented), http.StatusNotImplemented, codes.Unimplemented},
		{wrap(context.Canceled), StatusClientClosedRequest, codes.Canceled},
		{wrap(context.DeadlineExceeded), http.StatusGatewayTimeout, codes.DeadlineExceeded},
		{errors.New("boom"), http.StatusInternalServerError, codes.Internal},
	}
	for _, c := range cases {
		if got := statusOf(c.err); got != c.want {
			t.Errorf("statusOf(%v) = %d, want %d", c.err, got, c.want)
		}
		if got := grpcCodeOf(c.err); got != c.wantGRPC {
			t.Errorf("grpcCodeOf(%v) = %v, want %v", c.err, got, c.wantGRPC)
		}
	}
}
