package storage

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

const commit = "0123456789abcdef0123456789abcdef01234567"

// fakeHub serves repos the way huggingface.co does: the revision API, HEAD
// and GET on /resolve/ with X-Repo-Commit, ETag / X-Linked-Etag /
// X-Linked-Size, a 302 to a CDN for LFS files, Range support, 401 for
// private repos without the token. Faults are switched on per test.
type fakeHub struct {
	t       *testing.T
	repos   map[string]map[string][]byte // repo -> path -> content
	private map[string]bool
	token   string

	mu        sync.Mutex
	cutOnce   map[string]int // CDN path -> bytes to send before cutting the connection, once
	corrupt   map[string]bool
	gone      map[string]bool // listed by the API, 404 on resolve
	rangeSeen atomic.Int32
	gets      atomic.Int32
}

func newFakeHub(t *testing.T) (*fakeHub, *httptest.Server) {
	h := &fakeHub{t: t, repos: map[string]map[string][]byte{}, private: map[string]bool{},
		cutOnce: map[string]int{}, corrupt: map[string]bool{}, gone: map[string]bool{}, token: "hf_secret"}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func isLFS(path string) bool {
	return strings.HasSuffix(path, ".onnx") || strings.HasSuffix(path, "_data")
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func gitOID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	authed := r.Header.Get("Authorization") == "Bearer "+h.token
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
		_ = json.NewEncoder(w).Encode(map[string]any{"id": repo, "sha": commit, "siblings": sib})
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
	w.Header().Set("X-Repo-Commit", commit)
	if isLFS(path) {
		w.Header().Set("X-Linked-Etag", `"`+sha256hex(content)+`"`)
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

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/cdn/")
	parts := strings.SplitN(rest, "/", 3)
	content := h.repos[parts[0]+"/"+parts[1]][parts[2]]
	h.gets.Add(1)
	if r.Header.Get("Range") != "" {
		h.rangeSeen.Add(1)
	}
	h.mu.Lock()
	cut, doCut := h.cutOnce[r.URL.Path]
	delete(h.cutOnce, r.URL.Path)
	bad := h.corrupt[r.URL.Path]
	h.mu.Unlock()
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

// fixtureRepo is a real model folder's serving files plus weights Chorus
// must not fetch.
func fixtureRepo(t *testing.T) map[string][]byte {
	t.Helper()
	dir := filepath.Join("..", "testdata", "models", "sst2-tiny-a")
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

func newHub(srv *httptest.Server, cache string) *Hub {
	return &Hub{Endpoint: srv.URL, CacheDir: cache, Attempts: 3}
}

func TestSnapshotDownloadsServingFilesInHFLayout(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["distilbert/sst2"] = fixtureRepo(t)
	cache := t.TempDir()
	dir, err := newHub(srv, cache).Snapshot(context.Background(), "distilbert/sst2", "main")
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--distilbert--sst2")
	if want := filepath.Join(repoDir, "snapshots", commit); dir != want {
		t.Fatalf("snapshot dir %s, want %s", dir, want)
	}
	for p, want := range fh.repos["distilbert/sst2"] {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if p == "model.safetensors" || p == "README.md" || p == "vocab.txt" {
			if err == nil {
				t.Errorf("%s was downloaded; serving does not need it", p)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v (equal %v)", p, err, bytes.Equal(got, want))
		}
		// huggingface_hub layout: snapshot entries are relative symlinks into blobs/.
		target, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || filepath.IsAbs(target) || !strings.Contains(target, "blobs") {
			t.Errorf("%s: not a relative symlink into blobs/: %q %v", p, target, err)
		}
	}
	if _, err := os.Stat(filepath.Join(repoDir, "blobs", sha256hex(fh.repos["distilbert/sst2"]["onnx/model.onnx"]))); err != nil {
		t.Errorf("LFS blob not named by its SHA-256: %v", err)
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != commit {
		t.Errorf("refs/main = %q (%v), want the commit", ref, err)
	}

	// A second call finds everything cached and downloads nothing.
	before := fh.gets.Load()
	if _, err := newHub(srv, cache).Snapshot(context.Background(), "distilbert/sst2", "main"); err != nil {
		t.Fatal(err)
	}
	if fh.gets.Load() != before {
		t.Errorf("cached snapshot downloaded again")
	}
}

func TestPrivateRepoNeedsToken(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["acme/private"] = fixtureRepo(t)
	fh.private["acme/private"] = true
	hub := newHub(srv, t.TempDir())
	_, err := hub.Snapshot(context.Background(), "acme/private", "main")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("without a token: %v, want ErrUnauthorized mentioning HF_TOKEN", err)
	}
	hub.Token = fh.token
	if _, err := hub.Snapshot(context.Background(), "acme/private", "main"); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

func TestMissingRepoAndFiles(t *testing.T) {
	fh, srv := newFakeHub(t)
	noONNX := fixtureRepo(t)
	delete(noONNX, "onnx/model.onnx")
	fh.repos["acme/pytorch-only"] = noONNX
	noConfig := fixtureRepo(t)
	delete(noConfig, "config.json")
	fh.repos["acme/no-config"] = noConfig
	hub := newHub(srv, t.TempDir())

	if _, err := hub.Snapshot(context.Background(), "acme/nope", "main"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("missing repo: %v", err) // the Hub answers 401 for repos it will not confirm exist
	}
	_, err := hub.Snapshot(context.Background(), "acme/pytorch-only", "main")
	if !errors.Is(err, ErrNoONNX) || !strings.Contains(err.Error(), "scripts/export_onnx.py") {
		t.Errorf("no ONNX: %v, want ErrNoONNX with the export command", err)
	}
	if _, err := hub.Snapshot(context.Background(), "acme/no-config", "main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("no config.json: %v", err)
	}
	// Listed by the API but 404 at download time: the error names the file.
	fh.repos["acme/racy"] = fixtureRepo(t)
	fh.gone["tokenizer_config.json"] = true
	_, err = hub.Snapshot(context.Background(), "acme/racy", "main")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("file gone: %v", err)
	}
}

func TestCutDownloadResumes(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["acme/sst2"] = fixtureRepo(t)
	graph := fh.repos["acme/sst2"]["onnx/model.onnx"]
	fh.cutOnce["/cdn/acme/sst2/onnx/model.onnx"] = len(graph) / 3
	cache := t.TempDir()

	// One attempt: the cut is a clear error and nothing half-written is visible.
	one := &Hub{Endpoint: srv.URL, CacheDir: cache, Attempts: 1}
	_, err := one.Snapshot(context.Background(), "acme/sst2", "main")
	if err == nil || !strings.Contains(err.Error(), "onnx/model.onnx") || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("cut download: %v", err)
	}
	blob := filepath.Join(cache, "models--acme--sst2", "blobs", sha256hex(graph))
	if _, err := os.Stat(blob); err == nil {
		t.Fatal("a partial blob was moved into place")
	}
	if _, err := os.Stat(filepath.Join(cache, "models--acme--sst2", "snapshots", commit, "onnx", "model.onnx")); err == nil {
		t.Fatal("a snapshot link points at a partial file")
	}
	if st, err := os.Stat(blob + ".incomplete"); err != nil || st.Size() != int64(len(graph)/3) {
		t.Fatalf("partial file: %v, %v", st, err)
	}

	// Next call resumes with a Range request and ends with the right bytes.
	dir, err := one.Snapshot(context.Background(), "acme/sst2", "main")
	if err != nil {
		t.Fatal(err)
	}
	if fh.rangeSeen.Load() == 0 {
		t.Error("no Range request: the download was not resumed")
	}
	got, _ := os.ReadFile(filepath.Join(dir, "onnx", "model.onnx"))
	if !bytes.Equal(got, graph) {
		t.Error("resumed file differs from the original")
	}
}

func TestCutDownloadRetriesWithinOneCall(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["acme/sst2"] = fixtureRepo(t)
	fh.cutOnce["/cdn/acme/sst2/onnx/model.onnx"] = 1000
	if _, err := newHub(srv, t.TempDir()).Snapshot(context.Background(), "acme/sst2", "main"); err != nil {
		t.Fatalf("with 3 attempts a single cut must heal: %v", err)
	}
}

func TestWrongChecksumIsRejected(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["acme/sst2"] = fixtureRepo(t)
	fh.corrupt["/cdn/acme/sst2/onnx/model.onnx"] = true
	cache := t.TempDir()
	_, err := newHub(srv, cache).Snapshot(context.Background(), "acme/sst2", "main")
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt download: %v, want ErrChecksum", err)
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "models--acme--sst2", "blobs", "*"))
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		if bytes.Contains(b, []byte("xxxxxxxx")) {
			t.Errorf("corrupt bytes kept in the cache at %s", m)
		}
	}
}

func TestOffline(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["acme/sst2"] = fixtureRepo(t)
	cache := t.TempDir()
	offline := &Hub{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}
	if _, err := offline.Snapshot(context.Background(), "acme/sst2", "main"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Fatalf("offline with an empty cache: %v", err)
	}
	want, err := newHub(srv, cache).Snapshot(context.Background(), "acme/sst2", "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{"main", commit} {
		got, err := offline.Snapshot(context.Background(), "acme/sst2", rev)
		if err != nil || got != want {
			t.Errorf("offline %s: %s %v, want %s", rev, got, err, want)
		}
	}
}

func TestHubFromEnv(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "token"), []byte("hf_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HF_HOME": home, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://mirror.local/"}
	h := HubFromEnv(func(k string) string { return env[k] })
	if h.Token != "hf_from_file" || !h.Offline || h.Endpoint != "http://mirror.local" || h.CacheDir != filepath.Join(home, "hub") {
		t.Errorf("from env: %+v", h)
	}
	env["HF_TOKEN"], env["HF_HUB_CACHE"] = "hf_env", "/x/cache"
	h = HubFromEnv(func(k string) string { return env[k] })
	if h.Token != "hf_env" || h.CacheDir != "/x/cache" {
		t.Errorf("env overrides: %+v", h)
	}
}

func TestParse(t *testing.T) {
	base := "/etc/chorus"
	cases := []struct {
		in   string
		want Location
		err  string
	}{
		{"models/sst2", Location{Path: "/etc/chorus/models/sst2"}, ""},
		{"/abs/sst2", Location{Path: "/abs/sst2"}, ""},
		{"file:///abs/sst2", Location{Path: "/abs/sst2"}, ""},
		{"file://rel", Location{Path: "/etc/chorus/rel"}, ""},
		{"hf://distilbert/distilbert-base-uncased-finetuned-sst-2-english", Location{Repo: "distilbert/distilbert-base-uncased-finetuned-sst-2-english", Revision: "main"}, ""},
		{"hf://org/repo@v1.2", Location{Repo: "org/repo", Revision: "v1.2"}, ""},
		{"hf://gpt2", Location{Repo: "gpt2", Revision: "main"}, ""},
		{"hf://org/../x", Location{}, "want hf://ORG/REPO"},
		{"hf://", Location{}, "want hf://ORG/REPO"},
		{"s3://bucket/model", Location{}, "s3:// storage is not supported yet"},
		{"gs://bucket/model", Location{}, "not supported yet"},
		{"", Location{}, "empty"},
	}
	for _, c := range cases {
		got, err := Parse(c.in, base)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// The cache must be readable by Python's huggingface_hub: same names.
func TestCacheDirNaming(t *testing.T) {
	fh, srv := newFakeHub(t)
	fh.repos["Org-1/My.Model_2"] = fixtureRepo(t)
	cache := t.TempDir()
	if _, err := newHub(srv, cache).Snapshot(context.Background(), "Org-1/My.Model_2", "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--Org-1--My.Model_2", "refs", "main")); err != nil {
		t.Fatal(err)
	}
}
