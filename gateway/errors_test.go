package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/chorusml/chorus/protocol"
)

func TestStatusOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("model x: predict: %w", err) }
	cases := []struct {
		err  error
		want int
	}{
		{wrap(protocol.ErrInvalidInput), http.StatusBadRequest},
		{wrap(protocol.ErrTooLarge), http.StatusRequestEntityTooLarge},
		{wrap(&http.MaxBytesError{Limit: 10}), http.StatusRequestEntityTooLarge},
		{wrap(protocol.ErrModelNotFound), http.StatusNotFound},
		{wrap(protocol.ErrNotReady), http.StatusServiceUnavailable},
		{wrap(protocol.ErrUnavailable), http.StatusServiceUnavailable},
		{wrap(protocol.ErrBadGateway), http.StatusBadGateway},
		{wrap(protocol.ErrGatewayTimeout), http.StatusGatewayTimeout},
		{wrap(protocol.ErrUnauthorized), http.StatusUnauthorized},
		{wrap(protocol.ErrForbidden), http.StatusForbidden},
		{wrap(protocol.ErrRateLimited), http.StatusTooManyRequests},
		{wrap(protocol.ErrOverloaded), http.StatusServiceUnavailable},
		{wrap(context.Canceled), StatusClientClosedRequest},
		{wrap(context.DeadlineExceeded), http.StatusGatewayTimeout},
		{errors.New("boom"), http.StatusInternalServerError},
	}
	for _, c := range cases {
		if got := statusOf(c.err); got != c.want {
			t.Errorf("statusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
