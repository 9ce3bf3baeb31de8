package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// DefaultEndpoint is the public Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Hub downloads model repos from a Hugging Face Hub endpoint into a
// huggingface_hub-compatible cache:
//
//	CacheDir/models--ORG--NAME/blobs/<etag>          file contents
//	CacheDir/models--ORG--NAME/snapshots/<commit>/…  symlinks into blobs
//	CacheDir/models--ORG--NAME/refs/<revision>       the commit a revision names
type Hub struct {
	Endpoint string
	Token    string
	CacheDir string
	Offline  bool
	// Progress, if set, makes a progress display for one file download:
	// size is the file's, done the bytes a resumed download already has.
	Progress func(name string, size, done int64) io.WriteCloser
	// Attempts bounds tries per file (a cut download resumes). Default 3.
	Attempts int
	client   *http.Client
}

// HubFromEnv configures a Hub the way the Hugging Face tools do: HF_ENDPOINT,
// HF_TOKEN (else $HF_HOME/token), HF_HUB_CACHE (else $HF_HOME/hub, HF_HOME
// defaulting to ~/.cache/huggingface) and HF_HUB_OFFLINE.
func HubFromEnv(getenv func(string) string) *Hub {
	home := getenv("HF_HOME")
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = filepath.Join(h, ".cache", "huggingface")
		}
	}
	h := &Hub{Endpoint: strings.TrimRight(getenv("HF_ENDPOINT"), "/"), Token: getenv("HF_TOKEN"), CacheDir: getenv("HF_HUB_CACHE")}
	if h.Endpoint == "" {
		h.Endpoint = DefaultEndpoint
	}
	if h.CacheDir == "" {
		h.CacheDir = filepath.Join(home, "hub")
	}
	if h.Token == "" {
		if b, err := os.ReadFile(filepath.Join(home, "token")); err == nil {
			h.Token = strings.TrimSpace(string(b))
		}
	}
	switch strings.ToLower(getenv("HF_HUB_OFFLINE")) {
	case "1", "true", "yes", "on":
		h.Offline = true
	}
	return h
}

// Errors a caller may want to tell apart.
var (
	ErrUnauthorized = errors.New("unauthorized: the repo is private, gated or does not exist (set HF_TOKEN)")
	ErrNotFound     = errors.New("not found")
	ErrNoONNX       = errors.New("the repo has no ONNX weights (onnx/model.onnx or model.onnx); export them with `python scripts/export_onnx.py --model ORG/REPO --out DIR` and serve DIR, or push the export to the repo")
	ErrChecksum     = errors.New("checksum mismatch")
)

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (h *Hub) httpClient() *http.Client {
	if h.client == nil {
		// Redirects are followed by hand for HEAD (to read the Hub's own
		// headers) and by the client for GET; Go drops the Authorization
		// header when a redirect leaves the Hub's host.
		h.client = &http.Client{Timeout: 0}
	}
	return h.client
}

// Snapshot makes sure the files Chorus serves from repo at revision are in
// the cache and returns their snapshot folder.
func (h *Hub) Snapshot(ctx context.Context, repo, revision string) (string, error) {
	return h.SnapshotGraph(ctx, repo, revision, "")
}

// SnapshotGraph is Snapshot for one of the repo's ONNX graphs: graph names
// it (e.g. onnx/model_quantized.onnx; "" for the default onnx/model.onnx or
// model.onnx), and only that graph and its external data are downloaded.
func (h *Hub) SnapshotGraph(ctx context.Context, repo, revision, graph string) (string, error) {
	repoDir := filepath.Join(h.CacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
	uri := "hf://" + repo + "@" + revision
	if h.Offline {
		return h.offlineSnapshot(repoDir, uri, revision, graph)
	}
	info, err := h.repoInfo(ctx, repo, revision)
	if err != nil {
		return "", fmt.Errorf("%s: %w", uri, err)
	}
	files, err := selectFiles(info.files, graph)
	if err != nil {
		return "", fmt.Errorf("%s: %w", uri, err)
	}
	for _, f := range files {
		if err := h.ensureFile(ctx, repo, repoDir, info.commit, f); err != nil {
			return "", fmt.Errorf("%s: %s: %w", uri, f, err)
		}
	}
	if revision != info.commit {
		if err := writeAtomic(filepath.Join(repoDir, "refs", revision), []byte(info.commit)); err != nil {
			return "", fmt.Errorf("%s: write ref: %w", uri, err)
		}
	}
	return filepath.Join(repoDir, "snapshots", info.commit), nil
}

func (h *Hub) offlineSnapshot(repoDir, uri, revision, graph string) (string, error) {
	commit := revision
	if !commitRE.MatchString(revision) {
		b, err := os.ReadFile(filepath.Join(repoDir, "refs", revision))
		if err != nil {
			return "", fmt.Errorf("%s: HF_HUB_OFFLINE is set and the revision is not in the cache %s: %w", uri, h.CacheDir, ErrNotFound)
		}
		commit = strings.TrimSpace(string(b))
	}
	dir := filepath.Join(repoDir, "snapshots", commit)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return "", fmt.Errorf("%s: HF_HUB_OFFLINE is set and %s holds no snapshot %s: %w", uri, h.CacheDir, commit, ErrNotFound)
	}
	if graph != "" {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(graph))); err != nil {
			return "", fmt.Errorf("%s: HF_HUB_OFFLINE is set and the cached snapshot %s has no %s: %w", uri, commit, graph, ErrNotFound)
		}
	}
	return dir, nil
}

type repoInfo struct {
	commit string
	files  []string
}

// repoInfo asks the Hub's API which commit a revision names and which files it holds.
func (h *Hub) repoInfo(ctx context.Context, repo, revision string) (repoInfo, error) {
	u := fmt.Sprintf("%s/api/models/%s/revision/%s", h.Endpoint, repo, url.PathEscape(revision))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return repoInfo{}, fmt.Errorf("repo info: %w", err)
	}
	h.authorize(req)
	resp, err := h.httpClient().Do(req)
	if err != nil {
		return repoInfo{}, fmt.Errorf("repo info: %w", err)
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return repoInfo{}, fmt.Errorf("repo info: %w", err)
	}
	var body struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		return repoInfo{}, fmt.Errorf("repo info: decode: %w", err)
	}
	if !commitRE.MatchString(body.SHA) {
		return repoInfo{}, fmt.Errorf("repo info: the Hub gave no commit for revision %q", revision)
	}
	info := repoInfo{commit: body.SHA}
	for _, s := range body.Siblings {
		info.files = append(info.files, s.RFilename)
	}
	return info, nil
}

// selectFiles picks what serving needs: config, tokenizer, one ONNX graph
// (graph, else the default) and its external-data files. Weights in other
// formats, and the repo's other graphs, are never fetched.
func selectFiles(all []string, graph string) ([]string, error) {
	has := func(f string) bool { return slices.Contains(all, f) }
	if !has("config.json") {
		return nil, fmt.Errorf("config.json: %w", ErrNotFound)
	}
	want := []string{"config.json"}
	switch {
	case has("tokenizer.json"):
		want = append(want, "tokenizer.json")
	case has("vocab.json") && has("merges.txt"):
		want = append(want, "vocab.json", "merges.txt")
	case has("vocab.txt"):
		want = append(want, "vocab.txt")
	default:
		return nil, fmt.Errorf("no tokenizer.json, vocab.json + merges.txt or vocab.txt (a SentencePiece-only repo needs "+
			"a tokenizer.json: `python scripts/export_onnx.py --model ORG/REPO --out DIR` writes one): %w", ErrNotFound)
	}
	for _, f := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if has(f) {
			want = append(want, f)
		}
	}
	if graph != "" {
		if !has(graph) {
			var graphs []string
			for _, f := range all {
				if strings.HasSuffix(f, ".onnx") {
					graphs = append(graphs, f)
				}
			}
			return nil, fmt.Errorf("onnx_file %s is not in the repo (graphs there: %v): %w", graph, graphs, ErrNotFound)
		}
	} else {
		for _, g := range []string{"onnx/model.onnx", "model.onnx"} {
			if has(g) {
				graph = g
				break
			}
		}
		if graph == "" {
			return nil, ErrNoONNX
		}
	}
	want = append(want, graph)
	// External data sits beside the graph and is named after it:
	// model.onnx_data, model.onnx.data, model_fp16.onnx_data_1, …
	dir, base := path.Dir(graph), path.Base(graph)
	for _, f := range all {
		if path.Dir(f) != dir || f == graph {
			continue
		}
		rest, ok := strings.CutPrefix(path.Base(f), base)
		if ok && (strings.HasPrefix(rest, "_data") || strings.HasPrefix(rest, ".data")) {
			want = append(want, f)
		}
	}
	return want, nil
}

// fileMeta is what the Hub's resolve endpoint says about a file.
type fileMeta struct {
	etag   string // blob name: the LFS sha256, else the git object id
	sha256 string // set for LFS files: the content's SHA-256
	size   int64
	getURL string
}

// ensureFile puts one file into the cache: blob downloaded (resumed,
// verified, renamed into place) and the snapshot's symlink made.
func (h *Hub) ensureFile(ctx context.Context, repo, repoDir, commit, name string) error {
	link := filepath.Join(repoDir, "snapshots", commit, filepath.FromSlash(name))
	if _, err := os.Stat(link); err == nil {
		return nil
	}
	meta, err := h.fileMeta(ctx, repo, commit, name)
	if err != nil {
		return err
	}
	blob := filepath.Join(repoDir, "blobs", meta.etag)
	if _, err := os.Stat(blob); err != nil {
		attempts := h.Attempts
		if attempts <= 0 {
			attempts = 3
		}
		policy := backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(200*time.Millisecond)), uint64(attempts-1)), ctx)
		if err := backoff.Retry(func() error { return h.download(ctx, meta, blob, name) }, policy); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("snapshot dir: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	tmp := link + ".tmp-link"
	_ = os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

func (h *Hub) authorize(req *http.Request) {
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
}

func statusError(resp *http.Response) error {
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, ErrUnauthorized)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("HTTP 404: %w", ErrNotFound)
	default:
		return fmt.Errorf("HTTP %d from the Hub", resp.StatusCode)
	}
}

// writeAtomic writes data to path via a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
