package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorusml/chorus/storage/hubtest"
)

var fixture = filepath.Join("..", "testdata", "models", "sst2-tiny-a")

func newHub(endpoint, cache string) *Hub {
	return &Hub{Endpoint: endpoint, CacheDir: cache, Attempts: 3}
}

func TestSnapshotDownloadsServingFilesInHFLayout(t *testing.T) {
	fh := hubtest.New(t)
	files := hubtest.FixtureRepo(t, fixture)
	fh.AddRepo("distilbert/sst2", files, false)
	cache := t.TempDir()
	dir, err := newHub(fh.URL, cache).Snapshot(context.Background(), "distilbert/sst2", "main")
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--distilbert--sst2")
	if want := filepath.Join(repoDir, "snapshots", hubtest.Commit); dir != want {
		t.Fatalf("snapshot dir %s, want %s", dir, want)
	}
	for p, want := range files {
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
	if _, err := os.Stat(filepath.Join(repoDir, "blobs", hubtest.SHA256(files["onnx/model.onnx"]))); err != nil {
		t.Errorf("LFS blob not named by its SHA-256: %v", err)
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != hubtest.Commit {
		t.Errorf("refs/main = %q (%v), want the hubtest.Commit", ref, err)
	}

	// A second call finds everything cached and downloads nothing.
	before := fh.Downloads()
	if _, err := newHub(fh.URL, cache).Snapshot(context.Background(), "distilbert/sst2", "main"); err != nil {
		t.Fatal(err)
	}
	if fh.Downloads() != before {
		t.Errorf("cached snapshot downloaded again")
	}
}

func TestPrivateRepoNeedsToken(t *testing.T) {
	fh := hubtest.New(t)
	fh.AddRepo("acme/private", hubtest.FixtureRepo(t, fixture), true)
	hub := newHub(fh.URL, t.TempDir())
	_, err := hub.Snapshot(context.Background(), "acme/private", "main")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("without a token: %v, want ErrUnauthorized mentioning HF_TOKEN", err)
	}
	hub.Token = fh.Token
	if _, err := hub.Snapshot(context.Background(), "acme/private", "main"); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

func TestMissingRepoAndFiles(t *testing.T) {
	fh := hubtest.New(t)
	noONNX := hubtest.FixtureRepo(t, fixture)
	delete(noONNX, "onnx/model.onnx")
	fh.AddRepo("acme/pytorch-only", noONNX, false)
	noConfig := hubtest.FixtureRepo(t, fixture)
	delete(noConfig, "config.json")
	fh.AddRepo("acme/no-config", noConfig, false)
	hub := newHub(fh.URL, t.TempDir())

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
	fh.AddRepo("acme/racy", hubtest.FixtureRepo(t, fixture), false)
	fh.Gone("tokenizer_config.json")
	_, err = hub.Snapshot(context.Background(), "acme/racy", "main")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("file gone: %v", err)
	}
}

func TestCutDownloadResumes(t *testing.T) {
	fh := hubtest.New(t)
	files := hubtest.FixtureRepo(t, fixture)
	fh.AddRepo("acme/sst2", files, false)
	graph := files["onnx/model.onnx"]
	fh.CutOnce("acme/sst2", "onnx/model.onnx", len(graph)/3)
	cache := t.TempDir()

	// One attempt: the cut is a clear error and nothing half-written is visible.
	one := &Hub{Endpoint: fh.URL, CacheDir: cache, Attempts: 1}
	_, err := one.Snapshot(context.Background(), "acme/sst2", "main")
	if err == nil || !strings.Contains(err.Error(), "onnx/model.onnx") || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("cut download: %v", err)
	}
	blob := filepath.Join(cache, "models--acme--sst2", "blobs", hubtest.SHA256(graph))
	if _, err := os.Stat(blob); err == nil {
		t.Fatal("a partial blob was moved into place")
	}
	if _, err := os.Stat(filepath.Join(cache, "models--acme--sst2", "snapshots", hubtest.Commit, "onnx", "model.onnx")); err == nil {
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
	if fh.RangeRequests() == 0 {
		t.Error("no Range request: the download was not resumed")
	}
	got, _ := os.ReadFile(filepath.Join(dir, "onnx", "model.onnx"))
	if !bytes.Equal(got, graph) {
		t.Error("resumed file differs from the original")
	}
}

func TestCutDownloadRetriesWithinOneCall(t *testing.T) {
	fh := hubtest.New(t)
	fh.AddRepo("acme/sst2", hubtest.FixtureRepo(t, fixture), false)
	fh.CutOnce("acme/sst2", "onnx/model.onnx", 1000)
	if _, err := newHub(fh.URL, t.TempDir()).Snapshot(context.Background(), "acme/sst2", "main"); err != nil {
		t.Fatalf("with 3 attempts a single cut must heal: %v", err)
	}
}

func TestWrongChecksumIsRejected(t *testing.T) {
	fh := hubtest.New(t)
	fh.AddRepo("acme/sst2", hubtest.FixtureRepo(t, fixture), false)
	fh.Corrupt("acme/sst2", "onnx/model.onnx")
	cache := t.TempDir()
	_, err := newHub(fh.URL, cache).Snapshot(context.Background(), "acme/sst2", "main")
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
	fh := hubtest.New(t)
	fh.AddRepo("acme/sst2", hubtest.FixtureRepo(t, fixture), false)
	cache := t.TempDir()
	offline := &Hub{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}
	if _, err := offline.Snapshot(context.Background(), "acme/sst2", "main"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Fatalf("offline with an empty cache: %v", err)
	}
	want, err := newHub(fh.URL, cache).Snapshot(context.Background(), "acme/sst2", "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{"main", hubtest.Commit} {
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
	fh := hubtest.New(t)
	fh.AddRepo("Org-1/My.Model_2", hubtest.FixtureRepo(t, fixture), false)
	cache := t.TempDir()
	if _, err := newHub(fh.URL, cache).Snapshot(context.Background(), "Org-1/My.Model_2", "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--Org-1--My.Model_2", "refs", "main")); err != nil {
		t.Fatal(err)
	}
}

// Repos with several graphs (transformers.js / optimum: onnx/model.onnx,
// onnx/model_quantized.onnx, onnx/model_fp16.onnx + its external data): only
// the chosen graph and its own external data are downloaded.
func TestSnapshotGraphDownloadsOnlyThatGraph(t *testing.T) {
	fh := hubtest.New(t)
	files := hubtest.FixtureRepo(t, fixture)
	files["onnx/model.onnx_data"] = []byte("default graph weights")
	files["onnx/model_quantized.onnx"] = []byte("int8 graph")
	files["onnx/model_fp16.onnx"] = []byte("fp16 graph")
	files["onnx/model_fp16.onnx_data"] = []byte("fp16 weights")
	fh.AddRepo("Xenova/sst2", files, false)
	cache := t.TempDir()
	hub := newHub(fh.URL, cache)
	dir, err := hub.SnapshotGraph(context.Background(), "Xenova/sst2", "main", "onnx/model_fp16.onnx")
	if err != nil {
		t.Fatal(err)
	}
	for p := range files {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		want := p == "onnx/model_fp16.onnx" || p == "onnx/model_fp16.onnx_data" ||
			p == "config.json" || p == "tokenizer.json" || p == "tokenizer_config.json" || p == "special_tokens_map.json"
		if (err == nil) != want {
			t.Errorf("%s downloaded: %v, want %v", p, err == nil, want)
		}
	}
	_, err = hub.SnapshotGraph(context.Background(), "Xenova/sst2", "main", "onnx/model_int4.onnx")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "onnx/model_quantized.onnx") {
		t.Errorf("missing graph: %v, want ErrNotFound listing the repo's graphs", err)
	}
	offline := &Hub{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}
	if got, err := offline.SnapshotGraph(context.Background(), "Xenova/sst2", "main", "onnx/model_fp16.onnx"); err != nil || got != dir {
		t.Errorf("offline, cached graph: %s %v", got, err)
	}
	if _, err := offline.SnapshotGraph(context.Background(), "Xenova/sst2", "main", "onnx/model_quantized.onnx"); !errors.Is(err, ErrNotFound) {
		t.Errorf("offline, graph not cached: %v, want ErrNotFound", err)
	}
}

// RoBERTa repos with vocab.json + merges.txt and no tokenizer.json get
// those; SentencePiece-only repos are refused with the export command.
func TestSnapshotSlowTokenizerFiles(t *testing.T) {
	fh := hubtest.New(t)
	roberta := filepath.Join("..", "testdata", "models", "roberta-tiny")
	files := map[string][]byte{}
	for _, p := range []string{"config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "onnx/model.onnx"} {
		b, err := os.ReadFile(filepath.Join(roberta, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	fh.AddRepo("acme/roberta", files, false)
	spm := map[string][]byte{"config.json": files["config.json"], "sentencepiece.bpe.model": []byte("spm"), "onnx/model.onnx": files["onnx/model.onnx"]}
	fh.AddRepo("acme/xlmr", spm, false)
	hub := newHub(fh.URL, t.TempDir())
	dir, err := hub.Snapshot(context.Background(), "acme/roberta", "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"vocab.json", "merges.txt"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s not downloaded: %v", p, err)
		}
	}
	if _, err := hub.Snapshot(context.Background(), "acme/xlmr", "main"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "scripts/export_onnx.py") {
		t.Errorf("SentencePiece-only repo: %v, want ErrNotFound naming scripts/export_onnx.py", err)
	}
}
