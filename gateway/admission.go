package gateway

import (
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// admission bounds requests in flight server-wide: past the bound a request
// is answered 503 with Retry-After at once instead of queueing without end,
// so memory stays bounded under any storm.
func admission(s *Server, maxInFlight int) gin.HandlerFunc {
	return func(c *gin.Context) {
		release, err := s.admit()
		if err != nil {
			s.abort(c, err)
			return
		}
		defer release()
		c.Next()
	}
}

// admit takes one of the server's in-flight slots, which HTTP and gRPC
// share; release gives it back.
func (s *Server) admit() (release func(), err error) {
	if s.slots == nil {
		return func() {}, nil
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		return nil, fmt.Errorf("%w: %d requests in flight, the limit", protocol.ErrOverloaded, cap(s.slots))
	}
}
