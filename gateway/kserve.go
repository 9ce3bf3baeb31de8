package gateway

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// v2List answers GET /v2/models as KServe's server does (its
// ListModelsResponse): {"models": [names]}.
func (s *Server) v2List(c *gin.Context) {
	names := []string{}
	if r, _ := c.Value(registryKey).(*Registry); r != nil {
		names = r.Names()
	}
	c.JSON(http.StatusOK, gin.H{"models": names})
}

// v1Explain answers V1 :explain. Chorus serves no explainers, so, like
// KServe's server for a model without an explainer_host, a known model
// answers 501; an unknown one 404.
func (s *Server) v1Explain(c *gin.Context, name string) {
	c.Params = append(c.Params[:0:0], gin.Param{Key: "name", Value: name})
	m, _, err := s.model(c)
	if err == nil {
		err = fmt.Errorf("%w: model %q has no explainer", protocol.ErrNotImplemented, m.Name())
	}
	s.abort(c, err)
}
