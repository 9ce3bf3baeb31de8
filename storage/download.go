package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cenkalti/backoff/v4"
)

// One file's download: its metadata from the Hub, a resumable transfer
// into the blob store, and the checks before it is renamed into place.

// fileMeta HEADs the resolve URL without following redirects, as
// huggingface_hub does: the Hub's own response carries the etag, the LFS
// SHA-256 and size, and a Location to the content.
func (h *Hub) fileMeta(ctx context.Context, repo, commit, name string) (fileMeta, error) {
	u := fmt.Sprintf("%s/%s/resolve/%s/%s", h.Endpoint, repo, commit, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return fileMeta{}, fmt.Errorf("metadata: %w", err)
	}
	h.authorize(req)
	noRedirect := *h.httpClient()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return fileMeta{}, fmt.Errorf("metadata: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Fine: the content lives elsewhere (the LFS CDN).
	} else if err := statusError(resp); err != nil {
		return fileMeta{}, fmt.Errorf("metadata: %w", err)
	}
	m := fileMeta{getURL: u}
	if loc := resp.Header.Get("Location"); loc != "" {
		base, _ := url.Parse(u)
		ref, err := url.Parse(loc)
		if err != nil {
			return fileMeta{}, fmt.Errorf("metadata: bad Location %q: %w", loc, err)
		}
		m.getURL = base.ResolveReference(ref).String()
	}
	if lfs := cleanETag(resp.Header.Get("X-Linked-Etag")); lfs != "" {
		m.etag, m.sha256 = lfs, lfs
	} else {
		m.etag = cleanETag(resp.Header.Get("ETag"))
	}
	if m.etag == "" || strings.ContainsAny(m.etag, `/\.`) {
		return fileMeta{}, fmt.Errorf("metadata: the Hub sent no usable ETag")
	}
	size := resp.Header.Get("X-Linked-Size")
	if size == "" {
		size = resp.Header.Get("Content-Length")
	}
	m.size, _ = strconv.ParseInt(size, 10, 64)
	return m, nil
}

func cleanETag(s string) string {
	return strings.Trim(strings.TrimPrefix(s, "W/"), `"`)
}

// download fetches meta into blob. Bytes go to blob+".incomplete", which a
// later try resumes with a Range request; only a complete, verified file is
// renamed to blob, so a half file is never loaded.
func (h *Hub) download(ctx context.Context, meta fileMeta, blob, name string) error {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return backoff.Permanent(fmt.Errorf("blob dir: %w", err))
	}
	part := blob + ".incomplete"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return backoff.Permanent(fmt.Errorf("open %s: %w", part, err))
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return backoff.Permanent(fmt.Errorf("seek %s: %w", part, err))
	}
	if meta.size > 0 && have > meta.size {
		have = 0 // a stale partial larger than the file: start over
	}

	if meta.size == 0 || have < meta.size {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, meta.getURL, nil)
		if err != nil {
			return backoff.Permanent(fmt.Errorf("download: %w", err))
		}
		h.authorize(req)
		if have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		resp, err := h.httpClient().Do(req)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent:
		case resp.StatusCode == http.StatusOK:
			have = 0 // the server ignored Range: take the whole file
		default:
			if err := statusError(resp); err != nil {
				if resp.StatusCode >= 500 {
					return fmt.Errorf("download: %w", err)
				}
				return backoff.Permanent(fmt.Errorf("download: %w", err))
			}
		}
		if err := f.Truncate(have); err != nil {
			return backoff.Permanent(fmt.Errorf("truncate: %w", err))
		}
		if _, err := f.Seek(have, io.SeekStart); err != nil {
			return backoff.Permanent(fmt.Errorf("seek: %w", err))
		}
		var w io.Writer = f
		if h.Progress != nil {
			bar := h.Progress(name, meta.size, have)
			defer bar.Close()
			w = io.MultiWriter(f, bar)
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			// Keep the partial file: the next try resumes from it.
			return fmt.Errorf("download interrupted (resumable): %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return backoff.Permanent(fmt.Errorf("sync: %w", err))
	}
	if err := verify(part, meta); err != nil {
		_ = os.Remove(part)
		return backoff.Permanent(err)
	}
	if err := os.Rename(part, blob); err != nil {
		return backoff.Permanent(fmt.Errorf("move into place: %w", err))
	}
	return nil
}

// verify checks size and, for LFS files, the SHA-256 the Hub announced.
func verify(file string, meta fileMeta) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, f)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if meta.size > 0 && n != meta.size {
		return fmt.Errorf("got %d bytes, the Hub announced %d: %w", n, meta.size, ErrChecksum)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); meta.sha256 != "" && got != meta.sha256 {
		return fmt.Errorf("SHA-256 %s, the Hub announced %s: %w", got, meta.sha256, ErrChecksum)
	}
	return nil
}
