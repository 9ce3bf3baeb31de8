package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/storage"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// problems collects validation errors, each prefixed by its field path, in
// the order of the file (never of a map), so that messages are stable.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// field is a named value checked by a loop, in a fixed order.
type field[T any] struct {
	name string
	v    T
}

// notNegative reports every negative value under path.
func notNegative[T int | int64](errs *problems, path string, fs ...field[T]) {
	for _, f := range fs {
		if f.v < 0 {
			errs.add(path+f.name, "must not be negative")
		}
	}
}

// Validate checks a complete config (see Complete): it reads files it names
// (keys, calibration, TLS, model folders) but changes nothing.
func (c *Config) Validate() error {
	var errs problems
	if p := c.Server.HTTPPort; p < 0 || p > 65535 {
		errs.add("server.http_port", "%d is not a port (0-65535)", p)
	}
	if p := *c.Server.GRPCPort; p < 0 || p > 65535 {
		errs.add("server.grpc_port", "%d is not a port (0-65535, 0: no gRPC)", p)
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
	if c.Server.Monitoring.Window < 0 {
		errs.add("server.monitoring.window", "%d: must be positive", c.Server.Monitoring.Window)
	}
	if c.Server.GCPercent < 0 {
		errs.add("server.gc_percent", "%d: must be positive", c.Server.GCPercent)
	}
	if c.Server.Monitoring.Remember < 0 {
		errs.add("server.monitoring.remember", "%d: must be positive", c.Server.Monitoring.Remember)
	}
	if c.Auth.KeysFile != "" {
		if _, err := LoadKeys(c.Auth.KeysFile, os.Getenv); err != nil {
			errs.add("auth.keys_file", "%v", err)
		}
	}
	if len(c.Models) == 0 {
		errs.add("models", "at least one model is required")
	}
	c.Cache.validate(&errs)
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
		m.validate(path, &errs)
	}
	c.validateEnsembles(&errs)
	c.validateCascades(&errs)
	return errors.Join(errs...)
}

func (c Cache) validate(errs *problems) {
	if c.URL != "" && len(c.Addrs) > 0 {
		errs.add("cache", "url and addrs are exclusive")
	}
	if u := c.URL; u != "" && !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
		errs.add("cache.url", "%q: want redis://, rediss:// or unix://", cache.RedactURL(u))
	}
	notNegative(errs, "cache.", field[int64]{"ttl", int64(c.TTL)}, field[int64]{"timeout", int64(c.Timeout)},
		field[int64]{"write_queue", int64(c.WriteQueue)}, field[int64]{"max_entries", int64(c.MaxEntries)})
}

// modelsByName indexes the registry's models (the last of a duplicate
// name wins; duplicates are reported on their own).
func (c *Config) modelsByName() map[string]*Model {
	byName := map[string]*Model{}
	for i := range c.Models {
		byName[c.Models[i].Name] = &c.Models[i]
	}
	return byName
}

// validateEnsembles checks members once every model is known.
func (c *Config) validateEnsembles(errs *problems) {
	byName := c.modelsByName()
	for i := range c.Models {
		m := &c.Models[i]
		path := fmt.Sprintf("models[%s]", m.Name)
		if !m.IsEnsemble() {
			if m.Combine != "" || m.MinMembers != 0 {
				errs.add(path, "combine and min_members are for ensembles (models with members)")
			}
			continue
		}
		if !slices.Contains(ensemble.Combines, ensemble.Combine(m.Combine)) {
			errs.add(path+".combine", "%q is not one of %s", m.Combine, joinNames(ensemble.Combines))
		}
		if m.MinMembers < 0 || m.MinMembers > len(m.Members) {
			errs.add(path+".min_members", "%d: want 1..%d (0: all)", m.MinMembers, len(m.Members))
		}
		seen := map[string]bool{}
		for j, mem := range m.Members {
			mp := fmt.Sprintf("%s.members[%d]", path, j)
			target, ok := byName[mem.Name]
			switch {
			case mem.Name == "":
				errs.add(mp+".name", "required")
			case !ok:
				errs.add(mp+".name", "%q is not a model in this registry", mem.Name)
			case target.IsEnsemble():
				errs.add(mp+".name", "%q is an ensemble: members must be models with replicas", mem.Name)
			case target.IsCascade():
				errs.add(mp+".name", "%q is a cascade: members must be models with replicas", mem.Name)
			case mem.Name == m.Name:
				errs.add(mp+".name", "an ensemble cannot contain itself")
			case seen[mem.Name]:
				errs.add(mp+".name", "%q appears twice", mem.Name)
			}
			seen[mem.Name] = true
			if !(mem.Weight > 0) || math.IsInf(mem.Weight, 0) {
				errs.add(mp+".weight", "%v: want a finite weight > 0", mem.Weight)
			}
		}
	}
}

func (m *Model) validate(path string, errs *problems) {
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
	switch m.Activation {
	case "", "softmax", "sigmoid", "none":
	default:
		errs.add(path+".activation", "%q: want softmax, sigmoid or none", m.Activation)
	}
	if t := m.Threshold; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		errs.add(path+".threshold", "%v: want a finite score >= 0", t)
	}
	if t := m.Temperature; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		errs.add(path+".temperature", "%v: want a finite temperature > 0", t)
	}
	if m.Calibration != "" {
		if m.Temperature != 0 {
			errs.add(path, "temperature and calibration are exclusive")
		}
		if _, err := os.Stat(m.Calibration); err != nil {
			errs.add(path+".calibration", "%s: no such file (write one with `chorus calibrate`)", m.Calibration)
		}
	}
	m.validateLongText(path, errs)
	if m.IsCascade() {
		if len(m.Replicas) > 0 || len(m.Versions) > 0 || m.Version != "" || len(m.Members) > 0 {
			errs.add(path, "stages (a cascade) are exclusive with replicas, versions, version and members")
		}
		return
	}
	if m.IsEnsemble() {
		if len(m.Replicas) > 0 || len(m.Versions) > 0 || m.Version != "" {
			errs.add(path, "members (an ensemble) are exclusive with replicas, versions and version")
		}
		return
	}
	m.Pool.validate(path+".pool", errs)
	if m.Cache.TTL < 0 {
		errs.add(path+".cache.ttl", "must not be negative")
	}
	remote := false
	checkReplicas := func(rpath string, rs []Replica) {
		if len(rs) == 0 {
			errs.add(rpath, "at least one replica is required")
		}
		for j := range rs {
			rs[j].validate(fmt.Sprintf("%s[%d]", rpath, j), errs)
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
		m.validateVersions(path, errs, checkReplicas)
	}
	if remote && len(m.Labels) == 0 {
		errs.add(path+".labels", "required when a replica is remote (type: kserve): remote protocols do not carry label names")
	}
}

func (m *Model) validateVersions(path string, errs *problems, checkReplicas func(string, []Replica)) {
	names := map[string]bool{}
	traffic := 0
	for j, v := range m.Versions {
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

func (p *Pool) validate(path string, errs *problems) {
	if !slices.Contains(pool.Policies, p.Policy) {
		errs.add(path+".policy", "%q is not one of %s", p.Policy, strings.Join(pool.Policies, ", "))
	}
	notNegative(errs, path+".", field[int]{"attempts", p.Attempts}, field[int]{"max_in_flight", p.MaxInFlight},
		field[int]{"ejection.after", p.Ejection.After}, field[int]{"health.fall", p.Health.Fall},
		field[int]{"health.rise", p.Health.Rise}, field[int]{"breaker.min_requests", p.Breaker.MinRequests})
	if r := p.Breaker.FailureRatio; r < 0 || r > 1 {
		errs.add(path+".breaker.failure_ratio", "%v is not a ratio in [0, 1]", r)
	}
}

func (r *Replica) validate(rp string, errs *problems) {
	if r.Weight < 0 {
		errs.add(rp+".weight", "must not be negative")
	}
	switch r.Type {
	case TypeONNX:
		if r.URL != "" {
			errs.add(rp+".url", "is for type: kserve; type onnx takes model_dir or storage_uri")
		}
		r.validateONNX(rp, errs)
	case TypeKServe:
		if r.ModelDir != "" || r.StorageURI != "" {
			errs.add(rp, "model_dir and storage_uri are for type: onnx; type kserve takes url")
		}
		r.validateKServe(rp, errs)
	case "":
		errs.add(rp+".type", "required (one of: %s, %s)", TypeONNX, TypeKServe)
	default:
		errs.add(rp+".type", "%q is not a backend type (one of: %s, %s)", r.Type, TypeONNX, TypeKServe)
	}
}

func (r *Replica) validateONNX(rp string, errs *problems) {
	fpath := rp + ".model_dir"
	switch {
	case r.ModelDir != "" && r.StorageURI != "":
		errs.add(rp, "model_dir and storage_uri are exclusive")
		return
	case r.ModelDir == "" && r.StorageURI == "":
		errs.add(rp+".model_dir", "required (or storage_uri)")
		return
	case r.StorageURI != "":
		fpath = rp + ".storage_uri"
	case strings.Contains(r.ModelDir, "://"):
		errs.add(fpath, "%q is a URI: use storage_uri", r.ModelDir)
		return
	}
	loc, err := r.Location()
	if err != nil {
		errs.add(fpath, "%v", err)
	}
	r.validateONNXFile(rp, loc, errs)
	if err == nil && !loc.IsHub() {
		if st, err := os.Stat(loc.Path); err != nil {
			errs.add(fpath, "%s: no such directory", loc.Path)
		} else if !st.IsDir() {
			errs.add(fpath, "%s is not a directory", loc.Path)
		}
		if r.TokenizerRevision != "" {
			errs.add(rp+".tokenizer_revision", "needs an hf:// storage_uri")
		}
	}
	if !slices.Contains(onnx.Dtypes, r.Dtype) {
		errs.add(rp+".dtype", "%q: want %s", r.Dtype, oneOf(onnx.Dtypes[1:]))
	}
	if r.MaxLength < 0 {
		errs.add(rp+".max_length", "must not be negative")
	}
	b := r.Batching
	var spin, gap Duration
	if r.IntraOpSpin != nil {
		spin = *r.IntraOpSpin
	}
	if b.GatherGap != nil {
		gap = *b.GatherGap
	}
	notNegative(errs, rp+".", field[int]{"intra_op_threads", r.IntraOpThreads}, field[int]{"inter_op_threads", r.InterOpThreads},
		field[int]{"intra_op_spin", int(spin)},
		field[int]{"batching.max_batch_size", b.MaxBatchSize}, field[int]{"batching.max_batch_tokens", b.MaxBatchTokens},
		field[int]{"batching.queue_size", b.QueueSize}, field[int]{"batching.max_queue_delay", int(b.MaxQueueDelay)},
		field[int]{"batching.concurrent_runs", b.ConcurrentRuns}, field[int]{"batching.gather_gap", int(gap)})
	if g := r.GraphOptimization; !slices.Contains(onnx.GraphOptimizations, g) {
		errs.add(rp+".graph_optimization", "%q: want %s", g, oneOf(onnx.GraphOptimizations))
	}
	if !onnx.ValidDevice(r.Device) {
		errs.add(rp+".device", "%q: want cpu or cuda:N", r.Device)
	}
}

// validateONNXFile checks the graph a replica chooses: a clean path inside
// the model folder, there when the folder is local.
func (r *Replica) validateONNXFile(rp string, loc storage.Location, errs *problems) {
	f := r.ONNXFile
	switch {
	case f == "":
	case path.IsAbs(f) || strings.Contains(f, `\`) || path.Clean(f) != f || !filepath.IsLocal(f):
		errs.add(rp+".onnx_file", "%q: want a clean relative path inside the model folder, like onnx/model_quantized.onnx", f)
	case !strings.HasSuffix(f, ".onnx"):
		errs.add(rp+".onnx_file", "%q: want an .onnx graph", f)
	case !loc.IsHub() && loc.Path != "":
		if _, err := os.Stat(filepath.Join(loc.Path, filepath.FromSlash(f))); err != nil {
			errs.add(rp+".onnx_file", "%s: no such graph in %s", f, loc.Path)
		}
	}
}

func (r *Replica) validateKServe(rp string, errs *problems) {
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
	if !nameRE.MatchString(r.Model) {
		errs.add(rp+".model", "%q: use letters, digits, '.', '_' and '-'", r.Model)
	}
	if protocols := append(slices.Clone(kserve.Protocols), ProtocolGRPC); !slices.Contains(protocols, r.Protocol) {
		errs.add(rp+".protocol", "%q: want %s", r.Protocol, oneOf(protocols))
	}
	if !slices.Contains(kserve.LogitsFormats, r.Logits) {
		errs.add(rp+".logits", "%q: want kserve (KServe --disable_postprocess strings) or tensor (an FP32 output)", r.Logits)
	}
	if r.Timeout < 0 {
		errs.add(rp+".timeout", "must not be negative")
	}
	t := r.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs.add(rp+".tls", "cert_file and key_file go together")
	}
	for _, f := range []field[string]{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.v == "" {
			continue
		}
		if _, err := os.Stat(f.v); err != nil {
			errs.add(rp+".tls."+f.name, "%s: no such file", f.v)
		}
	}
	if u != nil && u.Scheme == "http" && (t.CAFile != "" || t.CertFile != "" || t.InsecureSkipVerify) {
		errs.add(rp+".tls", "set for an http:// URL")
	}
}

// oneOf lists allowed values for a message: "a, b or c".
func oneOf(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// joinNames lists allowed values for a message: "a, b, c".
func joinNames[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}
