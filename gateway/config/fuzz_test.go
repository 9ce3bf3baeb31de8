package config

import (
	"os"
	"path/filepath"
	"testing"
)

// The loader takes any bytes: a config or an error, never a panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("models: &a [*a]\n"))
	f.Add([]byte("server: {http_port: 99999999999999999999}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse(raw, dir)
		if err == nil && len(cfg.Models) == 0 {
			t.Fatal("accepted a registry without models")
		}
	})
}
