package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Marshal prints the effective registry; read back, it is the same config,
// for every shipped registry and every good test file.
func TestMarshalReloadsToTheSameConfig(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	nested, _ := filepath.Glob("../../configs/*/*.yaml")
	good, _ := filepath.Glob("testdata/*.good.yaml")
	for _, f := range append(append(files, nested...), good...) {
		if strings.HasPrefix(filepath.Base(f), "keys") {
			continue
		}
		cfg, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Errorf("%s: marshal: %v", f, err)
			continue
		}
		again, err := Parse(out, t.TempDir()) // paths are absolute: the folder does not matter
		if err != nil {
			t.Errorf("%s: printed registry does not load: %v\n%s", f, err, out)
			continue
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Errorf("%s: printed registry loads to another config:\n%s", f, out)
		}
	}
}

// Every default is filled in: the printed registry names the pool, cache
// and replica settings a file left out.
func TestMarshalShowsDefaults(t *testing.T) {
	cfg, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"policy: least_outstanding", "attempts: 3", "budget: 30s", "ttl: 24h0m0s",
		"namespace: chorus", "graph_optimization: all", "device: cpu", "max_batch_size: 32", "max_batch_tokens: 8192", "temperature: 1", "read_header: 10s"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("printed registry lacks %q:\n%s", want, out)
		}
	}
}

// Joined errors come out in the order of the file, the same every time.
func TestErrorOrderIsStable(t *testing.T) {
	raw := []byte("cache: {ttl: -1s, timeout: -1s, write_queue: -1, max_entries: -1}\nmodels:\n  - name: a\n    pool: {attempts: -1, max_in_flight: -1, health: {fall: -1, rise: -1}}\n    replicas: [{type: kserve, url: http://x, timeout: -1s}]\n")
	first := ""
	for i := range 20 {
		_, err := Parse(raw, t.TempDir())
		if err == nil {
			t.Fatal("no error")
		}
		if i == 0 {
			first = err.Error()
			continue
		}
		if err.Error() != first {
			t.Fatalf("error order changed:\n%s\nvs\n%s", first, err)
		}
	}
	if !strings.Contains(first, "cache.ttl: must not be negative\ncache.timeout") {
		t.Errorf("cache errors out of field order:\n%s", first)
	}
}
