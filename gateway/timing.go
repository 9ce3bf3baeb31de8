package gateway

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// timingHeaders gives every inference request (the POST routes) a
// protocol.Timing, which requestContext hands to the backends (in-process
// ones fill it, remote ones fill it from their own answer's headers), and
// writes TEI's timing headers (x-compute-time, x-tokenization-time, …) on
// its 200 answer, just before the status line goes out. Errors carry none,
// as in TEI.
func timingHeaders(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	// The Timing lives in the writer and reaches the context only in
	// requestContext: a c.Request.WithContext here would copy the request
	// on every call, cache hits included.
	w := &timingWriter{ResponseWriter: c.Writer, start: time.Now()}
	c.Writer = w
	c.Set(timingKey, &w.timing)
	c.Next()
}

// timingKey holds the request's *protocol.Timing among the gin keys.
const timingKey = "chorus.timing"

// timingOf returns the Timing timingHeaders gave c, or nil (timing headers
// off, or not an inference request).
func timingOf(c *gin.Context) *protocol.Timing {
	v, _ := c.Get(timingKey)
	t, _ := v.(*protocol.Timing)
	return t
}

// timingWriter adds the headers at the first write: handlers set their own
// headers (X-Chorus-Cache) and the status first, and then the body.
type timingWriter struct {
	gin.ResponseWriter
	timing protocol.Timing
	start  time.Time
	done   bool
}

func (w *timingWriter) setHeaders() {
	if w.done || w.Written() {
		return
	}
	w.done = true
	if w.Status() != http.StatusOK {
		return
	}
	// A whole cache hit asked no backend anything: every part is zero.
	computed := w.Header().Get(cacheHeader) != cacheHit
	w.timing.SetHeaders(w.Header(), time.Since(w.start), computed)
}

func (w *timingWriter) WriteHeaderNow() {
	w.setHeaders()
	w.ResponseWriter.WriteHeaderNow()
}

func (w *timingWriter) Write(b []byte) (int, error) {
	w.setHeaders()
	return w.ResponseWriter.Write(b)
}

func (w *timingWriter) WriteString(s string) (int, error) {
	w.setHeaders()
	return w.ResponseWriter.WriteString(s)
}

// The cache header as setCacheHeader writes it, and its value when every
// text came from the cache.
const (
	cacheHeader = "X-Chorus-Cache"
	cacheHit    = "hit"
)
