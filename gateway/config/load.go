package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"os"
	"path"
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
	if l.MaxInFlight == 0 {
		l.MaxInFlight = 1024
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	t := &c.Server.Timeouts
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{{&t.ReadHeader, 10 * time.Second}, {&t.Read, 30 * time.Second}, {&t.Write, 60 * time.Second}, {&t.Idle, 120 * time.Second}} {
		if *d.v == 0 {
			*d.v = Duration(d.def)
		}
	}
}

var cudaRE = regexp.MustCompile(`^cuda:[0-9]+$`)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// redactURL hides a password in a URL for error messages.
func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if scheme, _, ok := strings.Cut(u, "://"); ok {
			return scheme + "://***@" + u[at+1:]
		}
	}
	return u
}

// problems collects validation errors, each prefixed by its field path.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Validate checks values and resolves relative paths against baseDir. Call
// it on configs built in code (from flags) too, after WithDefaults.
func (c *Config) Validate(baseDir string) error {
	var errs problems
	if p := c.Server.HTTPPort; p < 0 || p > 65535 {
		errs.add("server.http_port", "%d is not a port (0-65535)", p)
	}
	if c.Server.ShutdownGrace < 0 {
		errs.add("server.shutdown_grace", "must not be negative")
	}
	l := c.Server.Limits
	if l.MaxBodyBytes < 0 {
		errs.add("server.limits.max_body_bytes", "must be positive")
	}
	if l.MaxInstances < 0 {
		errs.add("server.limits.max_instances", "must be positive")
	}
	if l.MaxTextChars < 0 {
		errs.add("server.limits.max_text_chars", "must be positive")
	}
	if l.MaxInFlight < 0 || l.MaxHeaderBytes < 0 {
		errs.add("server.limits", "max_in_flight and max_header_bytes must be positive")
	}
	if c.Auth.KeysFile != "" {
		if !filepath.IsAbs(c.Auth.KeysFile) {
			c.Auth.KeysFile = filepath.Join(baseDir, c.Auth.KeysFile)
		}
		if _, err := LoadKeys(c.Auth.KeysFile, os.Getenv); err != nil {
			errs.add("auth.keys_file", "%v", err)
		}
	}
	if len(c.Models) == 0 {
		errs.add("models", "at least one model is required")
	}
	if c.Cache.URL != "" && len(c.Cache.Addrs) > 0 {
		errs.add("cache", "url and addrs are exclusive")
	}
	if u := c.Cache.URL; u != "" && !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
		errs.add("cache.url", "%q: want redis://, rediss:// or unix://", redactURL(u))
	}
	for name, v := range map[string]int64{"ttl": int64(c.Cache.TTL), "timeout": int64(c.Cache.Timeout), "write_queue": int64(c.Cache.WriteQueue), "max_entries": int64(c.Cache.MaxEntries)} {
		if v < 0 {
			errs.add("cache."+name, "must not be negative")
		}
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
			errs.add(path+".name", "required")
		case !nameRE.MatchString(m.Name):
			errs.add(path+".name", "%q: use letters, digits, '.', '_' and '-'", m.Name)
		case seen[m.Name]:
			errs.add(path+".name", "duplicate model name %q", m.Name)
		}
		seen[m.Name] = true
		m.validate(path, baseDir, &errs)
	}
	c.validateEnsembles(&errs)
	return errors.Join(errs...)
}

var combines = []string{"mean_logits", "mean_probs", "majority_vote"}

// validateEnsembles checks members once every model is known.
func (c *Config) validateEnsembles(errs *problems) {
	byName := map[string]*Model{}
	for i := range c.Models {
		byName[c.Models[i].Name] = &c.Models[i]
	}
	for i := range c.Models {
		m := &c.Models[i]
		path := fmt.Sprintf("models[%s]", m.Name)
		if !m.IsEnsemble() {
			if m.Combine != "" || m.MinMembers != 0 {
				errs.add(path, "combine and min_members are for ensembles (models with members)")
			}
			continue
		}
		if m.Combine == "" {
			m.Combine = "mean_logits"
		}
		if !slices.Contains(combines, m.Combine) {
			errs.add(path+".combine", "%q is not one of %s", m.Combine, strings.Join(combines, ", "))
		}
		if m.MinMembers < 0 || m.MinMembers > len(m.Members) {
			errs.add(path+".min_members", "%d: want 1..%d (0: all)", m.MinMembers, len(m.Members))
		}
		seen := map[string]bool{}
		for j := range m.Members {
			mem := &m.Members[j]
			mp := fmt.Sprintf("%s.members[%d]", path, j)
			target, ok := byName[mem.Name]
			switch {
			case mem.Name == "":
				errs.add(mp+".name", "required")
			case !ok:
				errs.add(mp+".name", "%q is not a model in this registry", mem.Name)
			case target.IsEnsemble():
				errs.add(mp+".name", "%q is an ensemble: members must be models with replicas", mem.Name)
			case mem.Name == m.Name:
				errs.add(mp+".name", "an ensemble cannot contain itself")
			case seen[mem.Name]:
				errs.add(mp+".name", "%q appears twice", mem.Name)
			}
			seen[mem.Name] = true
			if mem.Weight < 0 || math.IsNaN(mem.Weight) || math.IsInf(mem.Weight, 0) {
				errs.add(mp+".weight", "%v: want a finite weight > 0", mem.Weight)
			}
			if mem.Weight == 0 {
				mem.Weight = 1
			}
		}
	}
}

func (m *Model) validate(path, baseDir string, errs *problems) {
	if m.Version != "" && !nameRE.MatchString(m.Version) {
		errs.add(path+".version", "%q: use letters, digits, '.', '_' and '-'", m.Version)
	}
	if m.ReturnProbabilities && m.DisablePostprocess {
		errs.add(path, "return_probabilities and disable_postprocess are exclusive")
	}
	labels := map[string]bool{}
	for j, l := range m.Labels {
		if l == "" || labels[l] {
			errs.add(fmt.Sprintf("%s.labels[%d]", path, j), "%q: labels must be non-empty and distinct", l)
		}
		labels[l] = true
	}
	m.Pool.validate(path+".pool", errs)
	if t := m.Temperature; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		errs.add(path+".temperature", "%v: want a finite temperature > 0", t)
	}
	if m.Calibration != "" {
		if m.Temperature != 0 {
			errs.add(path, "temperature and calibration are exclusive")
		}
		if !filepath.IsAbs(m.Calibration) {
			m.Calibration = filepath.Join(baseDir, m.Calibration)
		}
		if _, err := os.Stat(m.Calibration); err != nil {
			errs.add(path+".calibration", "%s: no such file (write one with `chorus calibrate`)", m.Calibration)
		}
	}
	if m.IsEnsemble() {
		if len(m.Replicas) > 0 || len(m.Versions) > 0 || m.Version != "" {
			errs.add(path, "members (an ensemble) are exclusive with replicas, versions and version")
		}
		return
	}
	if m.Cache.TTL < 0 {
		errs.add(path+".cache.ttl", "must not be negative")
	}

	remote := false
	checkReplicas := func(rpath string, rs []Replica) {
		if len(rs) == 0 {
			errs.add(rpath, "at least one replica is required")
		}
		for j := range rs {
			rs[j].validate(fmt.Sprintf("%s[%d]", rpath, j), m.Name, baseDir, errs)
			remote = remote || rs[j].Type == TypeKServe
		}
	}
	if len(m.Versions) == 0 {
		checkReplicas(path+".replicas", m.Replicas)
		if m.DefaultVersion != "" {
			errs.add(path+".default_version", "set without versions")
		}
	} else {
		if len(m.Replicas) > 0 || m.Version != "" {
			errs.add(path, "versions are exclusive with replicas and version")
		}
		names := map[string]bool{}
		traffic := 0
		for j := range m.Versions {
			v := &m.Versions[j]
			vpath := fmt.Sprintf("%s.versions[%d]", path, j)
			if v.Name != "" {
				vpath = fmt.Sprintf("%s.versions[%s]", path, v.Name)
			}
			switch {
			case v.Name == "":
				errs.add(vpath+".name", "required")
			case !nameRE.MatchString(v.Name):
				errs.add(vpath+".name", "%q: use letters, digits, '.', '_' and '-'", v.Name)
			case names[v.Name]:
				errs.add(vpath+".name", "duplicate version %q", v.Name)
			}
			names[v.Name] = true
			if v.Traffic < 0 || v.Traffic > 100 {
				errs.add(vpath+".traffic", "%d is not a percentage", v.Traffic)
			}
			traffic += v.Traffic
			checkReplicas(vpath+".replicas", v.Replicas)
		}
		if traffic != 0 && traffic != 100 {
			errs.add(path+".versions", "traffic adds up to %d%%: want 100, or 0 everywhere to use default_version", traffic)
		}
		if m.DefaultVersion != "" && !names[m.DefaultVersion] {
			errs.add(path+".default_version", "%q is not one of the versions", m.DefaultVersion)
		}
	}
	if remote && len(m.Labels) == 0 {
		errs.add(path+".labels", "required when a replica is remote (type: kserve): remote protocols do not carry label names")
	}
}

func (p *Pool) validate(path string, errs *problems) {
	if p.Policy != "" && !slices.Contains(policies, p.Policy) {
		errs.add(path+".policy", "%q is not one of %s", p.Policy, strings.Join(policies, ", "))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"attempts", p.Attempts}, {"max_in_flight", p.MaxInFlight}, {"ejection.after", p.Ejection.After},
		{"health.fall", p.Health.Fall}, {"health.rise", p.Health.Rise}, {"breaker.min_requests", p.Breaker.MinRequests}} {
		if f.v < 0 {
			errs.add(path+"."+f.name, "must not be negative")
		}
	}
	if r := p.Breaker.FailureRatio; r < 0 || r > 1 {
		errs.add(path+".breaker.failure_ratio", "%v is not a ratio in [0, 1]", r)
	}
}

// policies are the pool's selection policies (kept in step with gateway/pool).
var policies = []string{"least_outstanding", "round_robin", "weighted"}

func (r *Replica) validate(rp, modelName, baseDir string, errs *problems) {
	if r.Weight < 0 {
		errs.add(rp+".weight", "must not be negative")
	}
	switch r.Type {
	case TypeONNX:
		if r.URL != "" {
			errs.add(rp+".url", "is for type: kserve; type onnx takes model_dir or storage_uri")
		}
		r.validateONNX(rp, baseDir, errs)
	case TypeKServe:
		if r.ModelDir != "" || r.StorageURI != "" {
			errs.add(rp, "model_dir and storage_uri are for type: onnx; type kserve takes url")
		}
		r.validateKServe(rp, modelName, baseDir, errs)
	case "":
		errs.add(rp+".type", "required (one of: %s, %s)", TypeONNX, TypeKServe)
	default:
		errs.add(rp+".type", "%q is not a backend type (one of: %s, %s)", r.Type, TypeONNX, TypeKServe)
	}
}

func (r *Replica) validateONNX(rp, baseDir string, errs *problems) {
	field, uri := rp+".model_dir", r.ModelDir
	switch {
	case r.ModelDir != "" && r.StorageURI != "":
		errs.add(rp, "model_dir and storage_uri are exclusive")
		return
	case r.ModelDir == "" && r.StorageURI == "":
		errs.add(rp+".model_dir", "required (or storage_uri)")
		return
	case r.StorageURI != "":
		field, uri = rp+".storage_uri", r.StorageURI
	case strings.Contains(r.ModelDir, "://"):
		errs.add(field, "%q is a URI: use storage_uri", r.ModelDir)
		return
	}
	loc, err := storage.Parse(uri, baseDir)
	if err != nil {
		errs.add(field, "%v", err)
		return
	}
	r.Location = loc
	if !loc.IsHub() {
		r.ModelDir = loc.Path
		if st, err := os.Stat(loc.Path); err != nil {
			errs.add(field, "%s: no such directory", loc.Path)
		} else if !st.IsDir() {
			errs.add(field, "%s is not a directory", loc.Path)
		}
	}
	if r.MaxLength < 0 {
		errs.add(rp+".max_length", "must not be negative")
	}
	if f := r.ONNXFile; f != "" {
		switch {
		case path.IsAbs(f) || strings.Contains(f, `\`) || path.Clean(f) != f || !filepath.IsLocal(f):
			errs.add(rp+".onnx_file", "%q: want a clean relative path inside the model folder, like onnx/model_quantized.onnx", f)
		case !strings.HasSuffix(f, ".onnx"):
			errs.add(rp+".onnx_file", "%q: want an .onnx graph", f)
		case !r.Location.IsHub() && r.Location.Path != "":
			if _, err := os.Stat(filepath.Join(r.Location.Path, filepath.FromSlash(f))); err != nil {
				errs.add(rp+".onnx_file", "%s: no such graph in %s", f, r.Location.Path)
			}
		}
	}
	for name, v := range map[string]int{"intra_op_threads": r.IntraOpThreads, "inter_op_threads": r.InterOpThreads,
		"batching.max_batch_size": r.Batching.MaxBatchSize, "batching.max_batch_tokens": r.Batching.MaxBatchTokens,
		"batching.queue_size": r.Batching.QueueSize, "batching.max_queue_delay": int(r.Batching.MaxQueueDelay)} {
		if v < 0 {
			errs.add(rp+"."+name, "must not be negative")
		}
	}
	if g := r.GraphOptimization; g != "" && !slices.Contains([]string{"disable", "basic", "extended", "all"}, g) {
		errs.add(rp+".graph_optimization", "%q: want disable, basic, extended or all", g)
	}
	if d := r.Device; d != "" && d != "cpu" && !cudaRE.MatchString(d) {
		errs.add(rp+".device", "%q: want cpu or cuda:N", d)
	}
}

func (r *Replica) validateKServe(rp, modelName, baseDir string, errs *problems) {
	u, err := url.Parse(r.URL)
	switch {
	case r.URL == "":
		errs.add(rp+".url", "required")
	case !strings.Contains(r.URL, "://"):
		errs.add(rp+".url", "%q: missing scheme (want http:// or https://)", r.URL)
	case err != nil:
		errs.add(rp+".url", "%v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		errs.add(rp+".url", "%q: missing scheme (want http:// or https://)", r.URL)
	case u.Host == "":
		errs.add(rp+".url", "%q has no host", r.URL)
	}
	if r.Model == "" {
		r.Model = modelName
	} else if !nameRE.MatchString(r.Model) {
		errs.add(rp+".model", "%q: use letters, digits, '.', '_' and '-'", r.Model)
	}
	if r.Protocol == "" {
		r.Protocol = "v2"
	}
	if r.Protocol != "v1" && r.Protocol != "v2" {
		errs.add(rp+".protocol", "%q: want v1 or v2", r.Protocol)
	}
	if r.Logits == "" {
		r.Logits = "kserve"
	}
	if r.Logits != "kserve" && r.Logits != "tensor" {
		errs.add(rp+".logits", "%q: want kserve (KServe --disable_postprocess strings) or tensor (an FP32 output)", r.Logits)
	}
	if r.Timeout < 0 {
		errs.add(rp+".timeout", "must not be negative")
	}
	t := &r.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs.add(rp+".tls", "cert_file and key_file go together")
	}
	for name, f := range map[string]*string{"ca_file": &t.CAFile, "cert_file": &t.CertFile, "key_file": &t.KeyFile} {
		if *f == "" {
			continue
		}
		if !filepath.IsAbs(*f) {
			*f = filepath.Join(baseDir, *f)
		}
		if _, err := os.Stat(*f); err != nil {
			errs.add(rp+".tls."+name, "%s: no such file", *f)
		}
	}
	if u != nil && u.Scheme == "http" && (t.CAFile != "" || t.CertFile != "" || t.InsecureSkipVerify) {
		errs.add(rp+".tls", "set for an http:// URL")
	}
}

// WithDefaults fills the defaults of a config built in code.
func (c *Config) WithDefaults() *Config {
	c.applyDefaults()
	return c
}
