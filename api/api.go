// Package api holds Chorus's OpenAPI 3 document, committed and embedded so
// that the server can serve it at /openapi.json.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3 document of Chorus's REST API.
//
//go:embed openapi.json
var OpenAPI []byte
