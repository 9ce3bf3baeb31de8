package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chorusml/chorus/storage"
)

// DefaultShutdownGrace is how long SIGTERM waits for in-flight requests.
const DefaultShutdownGrace = 30 * time.Second

// Load reads, checks and completes the registry file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path: %w", err)
	}
	cfg, err := Parse(raw, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse checks and completes a registry; relative paths resolve against baseDir.
func Parse(raw []byte, baseDir string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty")
		}
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("config is empty")
	}
	if err := checkKeys(doc.Content[0], reflect.TypeOf(Config{}), ""); err != nil {
		return nil, err
	}
	var cfg Config
	if err := doc.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	cfg.applyDefaults()
	if err := cfg.Validate(baseDir); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// checkKeys rejects keys that the schema does not have, naming their path.
// yaml.v3's own strict mode reports only a line number; a path is what a
// person can act on.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.AliasNode:
		return checkKeys(n.Alias, t, path)
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("%s: unknown field (line %d); known: %s", join(path, key), n.Content[i].Line, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			}
			if err := checkKeys(n.Content[i+1], ft, join(path, key)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%s]", path, itemName(item, i))); err != nil {
				return err
			}
		}
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

// itemName names a list item by its "name" key when it has one, so errors
// read models[sst2] rather than models[3].
func itemName(n *yaml.Node, i int) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" && n.Content[j+1].Value != "" {
				return n.Content[j+1].Value
			}
		}
	}
	return fmt.Sprint(i)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *Config) applyDefaults() {
	if c.Server.HTTPPort == 0 {
		c.Server.HTTPPort = DefaultHTTPPort
	}
	if c.Server.ShutdownGrace == 0 {
		c.Server.ShutdownGrace = Duration(DefaultShutdownGrace)
	}
	l := &c.Server.Limits
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxInstances == 0 {
		l.MaxInstances = DefaultMaxInstances
	}
	if l.MaxTextChars == 0 {
		l.MaxTextChars = DefaultMaxTextChars
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate checks values and resolves relative paths against baseDir. Call
// it on configs built in code (from flags) too, after setting defaults with
// WithDefaults.
func (c *Config) Validate(baseDir string) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if p := c.Server.HTTPPort; p < 0 || p > 65535 {
		bad("server.http_port", "%d is not a port (0-65535)", p)
	}
	if c.Server.ShutdownGrace < 0 {
		bad("server.shutdown_grace", "must not be negative")
	}
	l := c.Server.Limits
	if l.MaxBodyBytes < 0 {
		bad("server.limits.max_body_bytes", "must be positive")
	}
	if l.MaxInstances < 0 {
		bad("server.limits.max_instances", "must be positive")
	}
	if l.MaxTextChars < 0 {
		bad("server.limits.max_text_chars", "must be positive")
	}
	if len(c.Models) == 0 {
		bad("models", "at least one model is required")
	}
	seen := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		path := fmt.Sprintf("models[%d]", i)
		if m.Name != "" {
			path = fmt.Sprintf("models[%s]", m.Name)
		}
		switch {
		case m.Name == "":
			bad(path+".name", "required")
		case !nameRE.MatchString(m.Name):
			bad(path+".name", "%q: use letters, digits, '.', '_' and '-'", m.Name)
		case seen[m.Name]:
			bad(path+".name", "duplicate model name %q", m.Name)
		}
		seen[m.Name] = true
		if m.Version != "" && !nameRE.MatchString(m.Version) {
			bad(path+".version", "%q: use letters, digits, '.', '_' and '-'", m.Version)
		}
		if m.ReturnProbabilities && m.DisablePostprocess {
			bad(path, "return_probabilities and disable_postprocess are exclusive")
		}
		if len(m.Replicas) == 0 {
			bad(path+".replicas", "at least one replica is required")
		}
		for j := range m.Replicas {
			r := &m.Replicas[j]
			rp := fmt.Sprintf("%s.replicas[%d]", path, j)
			switch r.Type {
			case TypeONNX:
			case "":
				bad(rp+".type", "required (one of: %s)", TypeONNX)
				continue
			default:
				bad(rp+".type", "%q is not a backend type (one of: %s)", r.Type, TypeONNX)
				continue
			}
			field, uri := rp+".model_dir", r.ModelDir
			switch {
			case r.ModelDir != "" && r.StorageURI != "":
				bad(rp, "model_dir and storage_uri are exclusive")
				continue
			case r.ModelDir == "" && r.StorageURI == "":
				bad(rp+".model_dir", "required (or storage_uri)")
				continue
			case r.StorageURI != "":
				field, uri = rp+".storage_uri", r.StorageURI
			case strings.Contains(r.ModelDir, "://"):
				bad(field, "%q is a URI: use storage_uri", r.ModelDir)
				continue
			}
			loc, err := storage.Parse(uri, baseDir)
			if err != nil {
				bad(field, "%v", err)
				continue
			}
			r.Location = loc
			if !loc.IsHub() {
				r.ModelDir = loc.Path
				if st, err := os.Stat(loc.Path); err != nil {
					bad(field, "%s: no such directory", loc.Path)
				} else if !st.IsDir() {
					bad(field, "%s is not a directory", loc.Path)
				}
			}
			if r.MaxLength < 0 {
				bad(rp+".max_length", "must not be negative")
			}
			if r.IntraOpThreads < 0 {
				bad(rp+".intra_op_threads", "must not be negative")
			}
		}
	}
	return errors.Join(errs...)
}

// WithDefaults fills the defaults of a config built in code.
func (c *Config) WithDefaults() *Config {
	c.applyDefaults()
	return c
}
