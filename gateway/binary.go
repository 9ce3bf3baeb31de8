package gateway

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// decodeV2HTTP decodes a V2 body, JSON or JSON plus binary tensor data
// (the Inference-Header-Content-Length header says which).
func decodeV2HTTP(c *gin.Context, body []byte) (protocol.V2Request, error) {
	jsonLen := -1
	if h := c.GetHeader(protocol.HeaderInferenceLength); h != "" {
		n, err := protocol.ParseHeaderLength(h, len(body))
		if err != nil {
			return protocol.V2Request{}, err
		}
		jsonLen = n
	}
	return protocol.DecodeV2Binary(body, jsonLen, v2OutputNames)
}

// writeV2 answers resp as JSON or, when the request asked for binary
// outputs, as JSON plus binary tensor data with the header giving the
// JSON's length, as Triton and KServe answer.
func (s *Server) writeV2(c *gin.Context, resp protocol.InferResponse, req protocol.V2Request) {
	body, jsonLen, err := protocol.MarshalV2(resp, req.Binary)
	if err != nil {
		s.abort(c, fmt.Errorf("render response: %w", err))
		return
	}
	if jsonLen < 0 {
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
		return
	}
	c.Header(protocol.HeaderInferenceLength, strconv.Itoa(jsonLen))
	c.Data(http.StatusOK, "application/octet-stream", body)
}
