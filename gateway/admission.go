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
	slots := make(chan struct{}, maxInFlight)
	return func(c *gin.Context) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			c.Next()
		default:
			s.abort(c, fmt.Errorf("%w: %d requests in flight, the limit", protocol.ErrOverloaded, maxInFlight))
		}
	}
}
