// Package swaggerui holds the interactive API page that Chorus serves at
// /docs: Swagger UI (npm swagger-ui-dist, pinned in scripts/swagger-ui.sh and
// committed under dist/) with a page and start-up script of ours that load
// the server's own /openapi.json. Everything is embedded in the binary, so
// the page needs no CDN or network at run time.
//
// It imports nothing of Chorus.
package swaggerui
