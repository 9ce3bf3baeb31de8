package swaggerui

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed index.html chorus-docs.js dist
var files embed.FS

// Page is the HTML page served at /docs. It refers to its scripts, styles
// and the OpenAPI document by relative URLs (docs/…, openapi.json), so it
// also works behind a proxy that adds a path prefix.
func Page() []byte {
	b, _ := files.ReadFile("index.html") // embedded: cannot fail
	return b
}

// Assets are the files the page loads, by name (swagger-ui-bundle.js,
// swagger-ui.css, chorus-docs.js, …), served at /docs/{name}.
func Assets() fs.FS { return assets{} }

// assets flattens dist/ and our start-up script into one directory.
type assets struct{}

func (assets) Open(name string) (fs.File, error) {
	if name == "chorus-docs.js" {
		return files.Open(name)
	}
	if name == "VERSION" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return files.Open("dist/" + name)
}

// Version is the Swagger UI release embedded.
func Version() string {
	b, _ := files.ReadFile("dist/VERSION")
	return strings.TrimSpace(string(b))
}
