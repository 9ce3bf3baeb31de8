package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// StatusClientClosedRequest is nginx's 499: the client went away first.
const StatusClientClosedRequest = 499

// statusOf is the one place where an error becomes an HTTP status.
func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig), errors.Is(err, protocol.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, protocol.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.Is(err, protocol.ErrModelNotFound):
		return http.StatusNotFound
	case errors.Is(err, protocol.ErrNotReady), errors.Is(err, protocol.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, protocol.ErrBadGateway):
		return http.StatusBadGateway
	case errors.Is(err, protocol.ErrGatewayTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// abort answers err as {"error": "..."} with its status. Internal errors
// are logged with the request id and answered without their details.
func (s *Server) abort(c *gin.Context, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.ErrorContext(c.Request.Context(), "internal error", slog.String(logKeyRequestID, requestID(c)), slog.Any(logKeyError, err))
		msg = "internal error (request id " + requestID(c) + ")"
	}
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, protocol.ErrorResponse{Error: msg})
}
