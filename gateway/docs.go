package gateway

import (
	"fmt"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/api/swaggerui"
	"github.com/chorusml/chorus/protocol"
)

// registerDocs serves the interactive API page (Swagger UI over
// /openapi.json, embedded in the binary) at /docs and the files it loads at
// /docs/{file}. Like /openapi.json it needs no API key: it holds nothing
// secret, and "try it out" sends the key the user types in.
func registerDocs(e *gin.Engine) {
	e.GET("/docs", func(c *gin.Context) {
		c.Data(http.StatusOK, "text/html; charset=utf-8", swaggerui.Page())
	})
	assets := swaggerui.Assets()
	e.GET("/docs/:file", func(c *gin.Context) {
		name := c.Param("file")
		if _, err := fs.Stat(assets, name); err != nil || !fs.ValidPath(name) {
			c.JSON(http.StatusNotFound, protocol.ErrorResponse{Error: fmt.Sprintf("no route %s %s", c.Request.Method, c.Request.URL.Path)})
			return
		}
		http.ServeFileFS(c.Writer, c.Request, assets, name)
	})
}
