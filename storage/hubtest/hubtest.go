// Package hubtest is a fake Hugging Face Hub for tests: an HTTP server that
// answers the revision API and /resolve/ the way huggingface.co does (ETag,
// X-Linked-Etag, X-Linked-Size, X-Repo-Commit, a 302 to a CDN for LFS files,
// Range requests, 401 for private repos without the token), with faults to
// switch on: a connection cut mid-file, corrupt bytes, a listed file gone.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Commit is the commit every revision resolves to.
const Commit = "0123456789abcdef0123456789abcdef01234567"

// fakeHub serves repos the way huggingface.co does: the revision API, HEAD
// and GET on /resolve/ with X-Repo-Commit, ETag / X-Linked-Etag /
// X-Linked-Size, a 302 to a CDN for LFS files, Range support, 401 for
// private repos without the token. Faults are switched on per test.
type Hub struct {
	// URL is the endpoint, for HF_ENDPOINT.
	URL string
	// Token is what private repos require as a bearer token.
	Token string

	mu        sync.Mutex
	repos     map[string]map[string][]byte // repo -> path -> content
	private   map[string]bool
	cutOnce   map[string]int // CDN path -> bytes to send before cutting the connection, once
	corrupt   map[string]bool
	gone      map[string]bool // listed by the API, 404 on resolve
	rangeSeen atomic.Int32
	gets      atomic.Int32
}

// New starts a fake Hub, closed when the test ends.
func New(t testing.TB) *Hub {
	h := &Hub{repos: map[string]map[string][]byte{}, private: map[string]bool{},
		cutOnce: map[string]int{}, corrupt: map[string]bool{}, gone: map[string]bool{}, Token: "hf_secret"}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

// AddRepo serves files (path -> content) as repo; a private one needs Token.
func (h *Hub) AddRepo(repo string, files map[string][]byte, private bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.repos[repo] = files
	h.private[repo] = private
}

// CutOnce makes the next download of repo's path stop after n bytes.
func (h *Hub) CutOnce(repo, path string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cutOnce["/cdn/"+repo+"/"+path] = n
}

// Corrupt makes downloads of repo's LFS path send wrong bytes.
func (h *Hub) Corrupt(repo, path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.corrupt["/cdn/"+repo+"/"+path] = true
}

// Gone keeps path listed by the API but answers 404 when it is fetched.
func (h *Hub) Gone(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone[path] = true
}

// RangeRequests counts downloads that asked for a byte range (resumes).
func (h *Hub) RangeRequests() int { return int(h.rangeSeen.Load()) }

// Downloads counts content downloads.
func (h *Hub) Downloads() int { return int(h.gets.Load()) }

func isLFS(path string) bool {
	return strings.HasSuffix(path, ".onnx") || strings.HasSuffix(path, "_data")
}

// SHA256 is the hex SHA-256 of b: an LFS file's blob name.
func SHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func gitOID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	authed := r.Header.Get("Authorization") == "Bearer "+h.Token
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/cdn/") {
		h.serveCDN(w, r)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/models/"); ok {
		repo, _, _ := strings.Cut(rest, "/revision/")
		files, exists := h.repos[repo]
		if !exists || (h.private[repo] && !authed) {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, `{"error":"Repository not found"}`, http.StatusUnauthorized)
			return
		}
		var sib []map[string]string
		for p := range files {
			sib = append(sib, map[string]string{"rfilename": p})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": repo, "sha": Commit, "siblings": sib})
		return
	}
	// /{org}/{name}/resolve/{rev}/{path}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 5)
	if len(parts) < 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	repo, path := parts[0]+"/"+parts[1], parts[4]
	files, exists := h.repos[repo]
	if !exists || (h.private[repo] && !authed) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	content, ok := files[path]
	if !ok || h.gone[path] {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "entry not found", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", Commit)
	if isLFS(path) {
		w.Header().Set("X-Linked-Etag", `"`+SHA256(content)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(content)))
		w.Header().Set("ETag", `"`+gitOID([]byte("lfs pointer"))+`"`)
		http.Redirect(w, r, "/cdn/"+repo+"/"+path, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitOID(content)+`"`)
	if r.Method == http.MethodGet {
		h.gets.Add(1)
	}
	http.ServeContent(w, r, path, time.Time{}, bytes.NewReader(content))
}

func (h *Hub) serveCDN(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/cdn/")
	parts := strings.SplitN(rest, "/", 3)
	content := h.repos[parts[0]+"/"+parts[1]][parts[2]]
	h.gets.Add(1)
	if r.Header.Get("Range") != "" {
		h.rangeSeen.Add(1)
	}
	cut, doCut := h.cutOnce[r.URL.Path]
	delete(h.cutOnce, r.URL.Path)
	bad := h.corrupt[r.URL.Path]
	if bad {
		content = bytes.Repeat([]byte{'x'}, len(content))
	}
	if doCut {
		// Announce the whole file, send part of it, then drop the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(content[:cut])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, parts[2], time.Time{}, bytes.NewReader(content))
}

// FixtureRepo is the files of the model folder dir plus weights and a card
// that Chorus must not fetch.
func FixtureRepo(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, p := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "onnx/model.onnx"} {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	files["model.safetensors"] = []byte("pytorch weights: never downloaded")
	files["README.md"] = []byte("# card")
	return files
}
