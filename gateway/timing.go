package gateway

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// timingHeaders gives every inference request (the POST routes) a
// protocol.Timing in its context, which in-process backends fill and remote
// ones fill from their own answer's headers, and writes TEI's timing headers
// (x-compute-time, x-tokenization-time, …) on its 200 answer, just before
// the status line goes out. Errors carry none, as in TEI.
func timingHeaders(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	t := &protocol.Timing{}
	c.Request = c.Request.WithContext(protocol.WithTiming(c.Request.Context(), t))
	c.Writer = &timingWriter{ResponseWriter: c.Writer, timing: t, start: time.Now()}
	c.Next()
}

// timingWriter adds the headers at the first write: handlers set their own
// headers (X-Chorus-Cache) and the status first, and then the body.
type timingWriter struct {
	gin.ResponseWriter
	timing *protocol.Timing
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
