package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chorusml/chorus/protocol"
)

// StatusClientClosedRequest is nginx's 499: the client went away first.
const StatusClientClosedRequest = 499

// Errors of the HTTP layer itself (the rest are protocol's sentinels).
var (
	errNoRoute          = errors.New("no route")
	errMethodNotAllowed = errors.New("method not allowed")
)

// statusOf is the one place where an error becomes an HTTP status.
func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errNoRoute):
		return http.StatusNotFound
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.As(err, &tooBig), errors.Is(err, protocol.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, protocol.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.Is(err, protocol.ErrModelNotFound), errors.Is(err, errUnknownAnswer):
		return http.StatusNotFound
	case errors.Is(err, protocol.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, protocol.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, protocol.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, protocol.ErrOverloaded):
		return http.StatusServiceUnavailable
	case errors.Is(err, protocol.ErrNotReady), errors.Is(err, protocol.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, protocol.ErrBadGateway):
		return http.StatusBadGateway
	case errors.Is(err, protocol.ErrGatewayTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, protocol.ErrNotImplemented):
		return http.StatusNotImplemented
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// abort answers err as {"error": "..."} with its status. Internal and
// backend errors are logged with the request id and answered without their
// details, which name internal addresses.
func (s *Server) abort(c *gin.Context, err error) {
	status := statusOf(err)
	msg := s.publicMessage(c.Request.Context(), err, status, c.Param("name"), requestID(c))
	setStatusHeaders(c, status)
	c.AbortWithStatusJSON(status, protocol.ErrorResponse{Error: msg})
}

// setStatusHeaders adds what a status promises: when to retry, how to
// authenticate.
func setStatusHeaders(c *gin.Context, status int) {
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		c.Header("Retry-After", "1")
	case http.StatusUnauthorized:
		c.Header("WWW-Authenticate", `Bearer realm="chorus"`)
	}
}

// publicMessage is what a client is told about err: internal and backend
// errors are logged with the request id and told without their details,
// which name internal addresses.
func (s *Server) publicMessage(ctx context.Context, err error, status int, model, id string) string {
	switch {
	case status == http.StatusInternalServerError:
		s.log.ErrorContext(ctx, "internal error", slog.String(logKeyRequestID, id), slog.Any(logKeyError, err))
		return "internal error (request id " + id + ")"
	case backendFault(err):
		s.log.WarnContext(ctx, "backend error", slog.String(logKeyRequestID, id), slog.Any(logKeyError, err))
		return fmt.Sprintf("%s: %s (request id %s)", backendSentinel(err), model, id)
	}
	return err.Error()
}

// grpcCodeOf is statusOf in gRPC's words: one decision, two transports.
func grpcCodeOf(err error) codes.Code {
	switch statusOf(err) {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case StatusClientClosedRequest:
		return codes.Canceled
	case http.StatusNotImplemented:
		return codes.Unimplemented
	default:
		return codes.Internal
	}
}

// grpcError is abort for gRPC: the status and the message a client sees.
func (s *Server) grpcError(ctx context.Context, err error, model, id string) error {
	return status.Error(grpcCodeOf(err), s.publicMessage(ctx, err, statusOf(err), model, id))
}

// backendFault reports errors that come from a backend, not the request.
func backendFault(err error) bool {
	return backendSentinel(err) != nil
}

func backendSentinel(err error) error {
	for _, e := range []error{protocol.ErrUnavailable, protocol.ErrBadGateway, protocol.ErrGatewayTimeout} {
		if errors.Is(err, e) {
			return e
		}
	}
	return nil
}
