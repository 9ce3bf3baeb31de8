package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorusml/chorus/storage/hubtest"
)

// A private Hub repo: `chorus pull` needs the token, fills the cache in
// huggingface_hub's layout, and `chorus --model_id` then serves it offline.
func TestPullAndServeFromHub(t *testing.T) {
	hub := hubtest.New(t)
	hub.AddRepo("acme/demo-sentiment", hubtest.FixtureRepo(t, filepath.Join("..", "models", "demo-sentiment")), true)
	cache := t.TempDir()
	env := []string{"HF_ENDPOINT=" + hub.URL, "HF_HUB_CACHE=" + cache, "HF_HOME=" + t.TempDir(), "HF_TOKEN="}

	code, out := runCmdEnv(t, env, "pull", "hf://acme/demo-sentiment")
	if code != 1 || !strings.Contains(out, "HF_TOKEN") {
		t.Fatalf("pull without a token: exit %d, %s", code, out)
	}

	code, out = runCmdEnv(t, append(env, "HF_TOKEN="+hub.Token), "pull", "hf://acme/demo-sentiment")
	if code != 0 {
		t.Fatalf("pull: exit %d, %s", code, out)
	}
	dir := strings.TrimSpace(out)
	if want := filepath.Join(cache, "models--acme--demo-sentiment", "snapshots", hubtest.Commit); dir != want {
		t.Fatalf("pull printed %q, want %q", dir, want)
	}
	for _, f := range []string{"config.json", "tokenizer.json", "onnx/model.onnx"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s missing from the snapshot: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Error("pull fetched PyTorch weights that serving does not need")
	}

	// Offline, from the cache: the seed answers as the KServe docs show.
	before := hub.Downloads()
	p := startEnv(t, append(env, "HF_HUB_OFFLINE=1"), "--model_name", "distilbert", "--model_id", "acme/demo-sentiment")
	p.waitReady(30 * time.Second)
	if status, body := post(t, p.URL+"/v1/models/distilbert:predict", seedV1); status != 200 || string(body) != `{"predictions":[1,0]}` {
		t.Errorf("served from the Hub cache: %d %s", status, body)
	}
	if hub.Downloads() != before {
		t.Error("offline serving contacted the Hub")
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
