package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/onnx"
)

// Every *.bad.yaml must fail with an error containing its expected text,
// and every file in testdata must be listed here or be a *.good.yaml.
var badFiles = map[string]string{
	"unknown-key.bad.yaml":           "models[sst2].replicas[0].modeldir: unknown field (line 6)",
	"unknown-top.bad.yaml":           "model: unknown field",
	"duplicate.bad.yaml":             `models[sst2].name: duplicate model name "sst2"`,
	"no-replicas.bad.yaml":           "models[sst2].replicas: at least one replica is required",
	"missing-dir.bad.yaml":           "models[sst2].replicas[0].model_dir: ",
	"bad-type.bad.yaml":              `models[sst2].replicas[0].type: "tensorflow" is not a backend type`,
	"both-modes.bad.yaml":            "models[sst2]: return_probabilities and disable_postprocess are exclusive",
	"bad-name.bad.yaml":              `.name: "my model/v1": use letters`,
	"bad-port.bad.yaml":              "server.http_port: 70000 is not a port",
	"bad-grpc-port.bad.yaml":         "server.grpc_port: -1 is not a port",
	"dtype.bad.yaml":                 `models[sst2].replicas[0].dtype: "float8": want auto`,
	"tokenizer-revision.bad.yaml":    "models[sst2].replicas[0].tokenizer_revision: needs an hf:// storage_uri",
	"bad-duration.bad.yaml":          `want a duration like "30s"`,
	"wrong-kind.bad.yaml":            "cannot unmarshal !!str `lots` into int",
	"empty.bad.yaml":                 "config is empty",
	"no-models.bad.yaml":             "models: at least one model is required",
	"dup-key.bad.yaml":               `mapping key "name" already defined`,
	"s3.bad.yaml":                    "models[sst2].replicas[0].storage_uri: s3:// storage is not supported yet",
	"both-sources.bad.yaml":          "models[sst2].replicas[0]: model_dir and storage_uri are exclusive",
	"uri-in-model-dir.bad.yaml":      `models[sst2].replicas[0].model_dir: "hf://org/repo" is a URI: use storage_uri`,
	"no-scheme.bad.yaml":             `models[sst2].replicas[0].url: "10.0.0.5:8080": missing scheme`,
	"remote-no-labels.bad.yaml":      "models[sst2].labels: required when a replica is remote",
	"traffic.bad.yaml":               "models[sst2].versions: traffic adds up to 80%",
	"default-version.bad.yaml":       `models[sst2].default_version: "3" is not one of the versions`,
	"versions-and-replicas.bad.yaml": "models[sst2]: versions are exclusive with replicas",
	"policy.bad.yaml":                `models[sst2].pool.policy: "random" is not one of`,
	"tls.bad.yaml":                   "models[sst2].replicas[0].tls: cert_file and key_file go together",
	"cache-url.bad.yaml":             `cache.url: "http://***@redis:6379": want redis://`,
	"ensemble-unknown.bad.yaml":      `models[both].members[1].name: "c" is not a model in this registry`,
	"ensemble-nested.bad.yaml":       `models[e2].members[1].name: "e1" is an ensemble`,
	"ensemble-combine.bad.yaml":      `models[e].combine: "median" is not one of`,
	"cascade-threshold.bad.yaml":     "models[c].stages[0].min_confidence: 1.5: want a probability in (0, 1]",
	"cascade-last.bad.yaml":          "models[c].stages[1].min_confidence: the last stage answers whatever reaches it",
	"cascade-nested.bad.yaml":        `models[c2].stages[1].name: "c1" is a cascade`,
	"cascade-failure.bad.yaml":       `models[c].on_stage_failure: "retry": want fail or next`,
	"cascade-temperature.bad.yaml":   "models[c]: a cascade answers in its stages' calibration",
	"cascade-activation.bad.yaml":    "models[c].activation: a cascade scores with its stages' activation",
	"long-text-remote.bad.yaml":      `models[sst2].replicas[0].type: "kserve": long_text chunk needs in-process replicas`,
	"long-text-stride.bad.yaml":      "models[sst2].long_text.stride: 128: want 0 up to less than the window",
	"long-text-mode.bad.yaml":        `models[sst2].long_text.mode: "sliding": want truncate or chunk`,
	"long-text-truncate.bad.yaml":    "models[sst2].long_text: window, stride and combine are for mode: chunk",
	"temperature.bad.yaml":           "models[a].temperature: -1: want a finite temperature > 0",
	"activation.bad.yaml":            `models[a].activation: "tanh": want softmax, sigmoid or none`,
	"threshold.bad.yaml":             "models[a].threshold: -0.5: want a finite score >= 0",
	"calibration-missing.bad.yaml":   "models[a].calibration: ",
	"device.bad.yaml":                `models[sst2].replicas[0].device: "gpu0": want cpu or cuda:N`,
	"protocol.bad.yaml":              `models[sst2].replicas[0].protocol: "v3": want v1, v2 or grpc`,
	"monitoring.bad.yaml":            "server.monitoring.window: -5: must be positive",
	"gc-percent.bad.yaml":            "server.gc_percent: -1: must be positive",
	"monitoring-key.bad.yaml":        "server.monitoring.windows: unknown field",
	"timing-headers.bad.yaml":        "cannot unmarshal !!str `sometimes` into bool",
	"onnx-file.bad.yaml":             `models[sst2].replicas[0].onnx_file: "../sst2-tiny-b/onnx/model.onnx": want a clean relative path`,
	"onnx-file-missing.bad.yaml":     "models[sst2].replicas[0].onnx_file: onnx/model_fp16.onnx: no such graph in",
}

func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(badFiles) {
		t.Errorf("%d bad files on disk, %d in the table", len(files), len(badFiles))
	}
	for _, f := range files {
		want, ok := badFiles[filepath.Base(f)]
		if !ok {
			t.Errorf("%s has no expected error in the table", f)
			continue
		}
		_, err := Load(f)
		if err == nil {
			t.Errorf("%s: loaded without error", f)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q\n  does not contain %q", f, err, want)
		}
	}
}

func TestGoodFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no good files")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestDefaultsAndPaths(t *testing.T) {
	cfg, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.HTTPPort != DefaultHTTPPort || *s.GRPCPort != DefaultGRPCPort || s.Limits.MaxBodyBytes != DefaultMaxBodyBytes ||
		s.Limits.MaxInstances != DefaultMaxInstances || s.Limits.MaxTextChars != DefaultMaxTextChars ||
		time.Duration(s.ShutdownGrace) != DefaultShutdownGrace ||
		s.Monitoring.Window != DefaultMonitoringWindow || s.Monitoring.Remember != DefaultMonitoringRemember {
		t.Errorf("defaults not applied: %+v", s)
	}
	dir := cfg.Models[0].Replicas[0].ModelDir
	if !filepath.IsAbs(dir) {
		t.Errorf("model_dir %q not resolved to an absolute path", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Errorf("model_dir resolved to the wrong place: %v", err)
	}

	full, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if full.Server.HTTPPort != 9000 || (*full.Server.GRPCPort) != 9001 || time.Duration(full.Server.ShutdownGrace) != 10*time.Second ||
		full.Server.Limits.MaxInstances != 32 || full.Models[0].Replicas[0].MaxLength != 128 || !full.Models[1].DisablePostprocess {
		t.Errorf("values not read: %+v", full)
	}
}

func TestGRPCOff(t *testing.T) {
	cfg, err := Load("testdata/grpc-off.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if (*cfg.Server.GRPCPort) != 0 {
		t.Errorf("grpc_port 0 read as %d, want 0 (off)", (*cfg.Server.GRPCPort))
	}
}

func TestMonitoring(t *testing.T) {
	cfg, err := Load("testdata/monitoring.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Server.Monitoring; m.Window != 500 || m.Remember != 20000 {
		t.Errorf("monitoring %+v, want the file's window 500 and remember 20000", m)
	}
}

// Every shipped registry in configs/ must load: examples never rot.
func TestShippedConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	stack, _ := filepath.Glob("../../configs/*/*.yaml")
	files = append(files, stack...)
	if len(files) == 0 {
		t.Fatal("no configs/*.yaml found")
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "keys") {
			if _, err := LoadKeys(f, func(string) string { return "a-key-of-sixteen-characters" }); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "keys.yaml")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	env := func(k string) string {
		if k == "GOOD" {
			return "0123456789abcdefXYZ"
		}
		return ""
	}
	keys, err := LoadKeys(write("keys:\n  - {name: a, key_env: GOOD, models: [\"*\"], rate: 5}\n"), env)
	if err != nil || keys[0].Hash != hashKey("0123456789abcdefXYZ") || keys[0].Burst != 5 {
		t.Fatalf("%+v %v", keys, err)
	}
	for body, want := range map[string]string{
		"keys:\n  - {name: a, key_env: NOPE, models: [x]}\n":                 "unset or shorter than 16",
		"keys:\n  - {name: a, key_sha256: zz, models: [x]}\n":                "64 hex digits",
		"keys:\n  - {name: a, key_env: GOOD}\n":                              "models: required",
		"keys:\n  - {name: a, key_env: GOOD, key_sha256: ab, models: [x]}\n": "exactly one of",
		"keys:\n  - {name: a, key: hunter2, models: [x]}\n":                  "field key not found",
		"keys: []\n": "no keys",
	} {
		_, err := LoadKeys(write(body), env)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("an error repeats a key: %v", err)
		}
	}
}

func TestErrorsAreJoined(t *testing.T) {
	_, err := Parse([]byte("server: {http_port: -1}\nmodels:\n  - replicas: []\n"), t.TempDir())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"server.http_port", "models[0].name: required", "models[0].replicas"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// Timing headers are on unless a file turns them off.
func TestTimingHeadersDefault(t *testing.T) {
	for file, want := range map[string]bool{"testdata/minimal.good.yaml": true, "testdata/timing-headers-off.good.yaml": false} {
		c, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := *c.Server.TimingHeaders; got != want {
			t.Errorf("%s: timing headers %v, want %v", file, got, want)
		}
	}
}

func TestGCPercent(t *testing.T) {
	for file, want := range map[string]int{"testdata/minimal.good.yaml": DefaultGCPercent, "testdata/gc-percent.good.yaml": 150} {
		c, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if c.Server.GCPercent != want {
			t.Errorf("%s: gc_percent %d, want %d", file, c.Server.GCPercent, want)
		}
	}
}

func TestActivation(t *testing.T) {
	cfg, err := Load("testdata/activation.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Models[0]; m.Activation != "sigmoid" || m.Threshold != 0.3 {
		t.Errorf("activation %q threshold %v, want the file's sigmoid and 0.3", m.Activation, m.Threshold)
	}
	// Left empty: the model's metadata decides when the model is built.
	if m := cfg.Models[1]; m.Activation != "" || m.Threshold != 0 {
		t.Errorf("defaults %q %v, want empty (resolved from the model's config.json)", m.Activation, m.Threshold)
	}
}

// Concurrent runs default by device and may not be negative.
func TestConcurrentRuns(t *testing.T) {
	const doc = "models:\n  - name: m\n    replicas:\n      - {type: onnx, model_dir: ../../../testdata/models/sst2-tiny-a, device: %s%s}\n"
	for _, tc := range []struct {
		device, batching string
		want             int
	}{
		{"cpu", "", onnx.DefaultConcurrentRuns(onnx.DeviceCPU)},
		{"cuda:0", "", 1},
		{"cpu", ", batching: {concurrent_runs: 3}", 3},
	} {
		cfg, err := Parse(fmt.Appendf(nil, doc, tc.device, tc.batching), "testdata")
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Models[0].Replicas[0].Batching.ConcurrentRuns; got != tc.want {
			t.Errorf("%s%s: concurrent_runs %d, want %d", tc.device, tc.batching, got, tc.want)
		}
	}
	_, err := Parse(fmt.Appendf(nil, doc, "cpu", ", batching: {concurrent_runs: -1}"), "testdata")
	if err == nil || !strings.Contains(err.Error(), "batching.concurrent_runs") {
		t.Errorf("concurrent_runs -1: %v, want an error naming batching.concurrent_runs", err)
	}
}

// The gather gap defaults to onnx's, 0s turns it off, and it may not be
// negative.
func TestGatherGap(t *testing.T) {
	const doc = "models:\n  - name: m\n    replicas:\n      - {type: onnx, model_dir: ../../../testdata/models/sst2-tiny-a%s}\n"
	for _, tc := range []struct {
		batching string
		want     time.Duration
	}{
		{"", onnx.DefaultGatherGap},
		{", batching: {gather_gap: 0s}", 0},
		{", batching: {gather_gap: 2ms}", 2 * time.Millisecond},
	} {
		cfg, err := Parse(fmt.Appendf(nil, doc, tc.batching), "testdata")
		if err != nil {
			t.Fatal(err)
		}
		g := cfg.Models[0].Replicas[0].Batching.GatherGap
		if g == nil {
			t.Fatalf("%q: gather_gap not set, want %v", tc.batching, tc.want)
		}
		if time.Duration(*g) != tc.want {
			t.Errorf("%q: gather_gap %v, want %v", tc.batching, time.Duration(*g), tc.want)
		}
	}
	_, err := Parse(fmt.Appendf(nil, doc, ", batching: {gather_gap: -1ms}"), "testdata")
	if err == nil || !strings.Contains(err.Error(), "batching.gather_gap") {
		t.Errorf("gather_gap -1ms: %v, want an error naming batching.gather_gap", err)
	}
}
