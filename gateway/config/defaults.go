package config

import (
	"cmp"
	"path/filepath"
	"strings"
	"time"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/gateway/pool"
)

// The server's defaults. The defaults of what the registry configures
// (pools, backends, the cache, ensembles) are exported by those packages and
// filled in from there by applyDefaults: this file is where every default of
// a registry is applied, and the only one.
const (
	DefaultHTTPPort       = 8080
	DefaultGRPCPort       = 8081 // as KServe's; 0 turns gRPC off
	DefaultShutdownGrace  = 30 * time.Second
	DefaultMaxBodyBytes   = 4 << 20
	DefaultMaxInstances   = 256
	DefaultMaxTextChars   = 100_000
	DefaultMaxInFlight    = 1024
	DefaultMaxHeaderBytes = 64 << 10
	DefaultReadHeader     = 10 * time.Second
	DefaultRead           = 30 * time.Second
	DefaultWrite          = 60 * time.Second
	DefaultIdle           = 120 * time.Second
	// DefaultMonitoringWindow is how many labelled answers per model the
	// rolling calibration gauges cover.
	DefaultMonitoringWindow = 1000
	// DefaultMonitoringRemember is how many answered texts are kept by
	// request id for feedback: about 10 MB for two labels.
	DefaultMonitoringRemember = 100_000
	// DefaultGCPercent is the gateway's GOGC. Its Go heap holds requests,
	// cache entries and remembered answers, not the models (ONNX Runtime
	// and the tokenizers allocate their own memory): four times Go's
	// default target cuts the garbage collector's CPU on the cache-hit
	// path for tens of MB (README, Performance).
	DefaultGCPercent = 400
	// DefaultTemperature leaves logits as they are.
	DefaultTemperature = 1.0
)

// applyDefaults fills every zero field that has a default, and makes
// relative paths absolute against baseDir, so that the config is complete
// and Validate only checks. Fields set in the file are never changed.
func (c *Config) applyDefaults(baseDir string) {
	s := &c.Server
	s.HTTPPort = cmp.Or(s.HTTPPort, DefaultHTTPPort)
	if s.GRPCPort == nil {
		p := DefaultGRPCPort
		s.GRPCPort = &p
	}
	s.ShutdownGrace = cmp.Or(s.ShutdownGrace, Duration(DefaultShutdownGrace))
	l := &s.Limits
	l.MaxBodyBytes = cmp.Or(l.MaxBodyBytes, DefaultMaxBodyBytes)
	l.MaxInstances = cmp.Or(l.MaxInstances, DefaultMaxInstances)
	l.MaxTextChars = cmp.Or(l.MaxTextChars, DefaultMaxTextChars)
	l.MaxInFlight = cmp.Or(l.MaxInFlight, DefaultMaxInFlight)
	l.MaxHeaderBytes = cmp.Or(l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	t := &s.Timeouts
	t.ReadHeader = cmp.Or(t.ReadHeader, Duration(DefaultReadHeader))
	t.Read = cmp.Or(t.Read, Duration(DefaultRead))
	t.Write = cmp.Or(t.Write, Duration(DefaultWrite))
	t.Idle = cmp.Or(t.Idle, Duration(DefaultIdle))
	mo := &s.Monitoring
	mo.Window = cmp.Or(mo.Window, DefaultMonitoringWindow)
	mo.Remember = cmp.Or(mo.Remember, DefaultMonitoringRemember)
	s.TimingHeaders = orTrue(s.TimingHeaders)
	s.GCPercent = cmp.Or(s.GCPercent, DefaultGCPercent)

	c.Cache.Enabled = orTrue(c.Cache.Enabled)
	c.Cache.TTL = cmp.Or(c.Cache.TTL, Duration(cache.DefaultTTL))
	c.Cache.Timeout = cmp.Or(c.Cache.Timeout, Duration(cache.DefaultTimeout))
	c.Cache.WriteQueue = cmp.Or(c.Cache.WriteQueue, cache.DefaultWriteQueue)
	c.Cache.MaxEntries = cmp.Or(c.Cache.MaxEntries, cache.DefaultMaxEntries)
	c.Cache.Namespace = cmp.Or(c.Cache.Namespace, cache.DefaultNamespace)

	c.Auth.KeysFile = absPath(baseDir, c.Auth.KeysFile)
	for i := range c.Models {
		c.Models[i].applyDefaults(baseDir)
	}
}

func (m *Model) applyDefaults(baseDir string) {
	m.Cache.Enabled = orTrue(m.Cache.Enabled)
	m.LongText.applyDefaults()
	m.Calibration = absPath(baseDir, m.Calibration)
	if m.Calibration == "" {
		m.Temperature = cmp.Or(m.Temperature, DefaultTemperature)
	}
	if m.IsCascade() {
		m.OnStageFailure = cmp.Or(m.OnStageFailure, DefaultOnStageFailure)
		return
	}
	if m.IsEnsemble() {
		m.Combine = cmp.Or(m.Combine, string(ensemble.DefaultCombine))
		for j := range m.Members {
			m.Members[j].Weight = cmp.Or(m.Members[j].Weight, 1)
		}
		return
	}
	m.Pool.applyDefaults()
	for j := range m.Replicas {
		m.Replicas[j].applyDefaults(m.Name, baseDir)
	}
	for j := range m.Versions {
		for k := range m.Versions[j].Replicas {
			m.Versions[j].Replicas[k].applyDefaults(m.Name, baseDir)
		}
	}
}

func (p *Pool) applyDefaults() {
	d := pool.DefaultOptions()
	p.Policy = cmp.Or(p.Policy, d.Policy)
	p.Attempts = cmp.Or(p.Attempts, d.Attempts)
	p.Budget = cmp.Or(p.Budget, Duration(d.Budget))
	p.Ejection.After = cmp.Or(p.Ejection.After, d.EjectAfter)
	p.Ejection.Base = cmp.Or(p.Ejection.Base, Duration(d.EjectFor))
	p.Ejection.Max = cmp.Or(p.Ejection.Max, Duration(d.EjectMax))
	p.Health.Interval = cmp.Or(p.Health.Interval, Duration(d.HealthInterval))
	p.Health.Timeout = cmp.Or(p.Health.Timeout, Duration(d.HealthTimeout))
	p.Health.Fall = cmp.Or(p.Health.Fall, d.Fall)
	p.Health.Rise = cmp.Or(p.Health.Rise, d.Rise)
	p.Breaker.MinRequests = cmp.Or(p.Breaker.MinRequests, int(d.BreakerMinRequests))
	p.Breaker.FailureRatio = cmp.Or(p.Breaker.FailureRatio, d.BreakerFailureRatio)
	p.Breaker.Window = cmp.Or(p.Breaker.Window, Duration(d.BreakerWindow))
	p.Breaker.Timeout = cmp.Or(p.Breaker.Timeout, Duration(d.BreakerTimeout))
}

func (r *Replica) applyDefaults(modelName, baseDir string) {
	r.Weight = cmp.Or(r.Weight, 1)
	switch r.Type {
	case TypeONNX:
		r.ModelDir = absPath(baseDir, r.ModelDir)
		r.StorageURI = absURI(baseDir, r.StorageURI)
		r.GraphOptimization = cmp.Or(r.GraphOptimization, onnx.DefaultGraphOptimization)
		r.Device = cmp.Or(r.Device, onnx.DeviceCPU)
		if r.IntraOpSpin == nil {
			d := Duration(onnx.DefaultIntraOpSpin)
			r.IntraOpSpin = &d
		}
		r.MemoryArena = orTrue(r.MemoryArena)
		r.SpecialTokens = orTrue(r.SpecialTokens)
		r.Dtype = cmp.Or(r.Dtype, onnx.DefaultDtype)
		r.Batching.Enabled = orTrue(r.Batching.Enabled)
		if *r.Batching.Enabled {
			d := onnx.DefaultBatching()
			b := &r.Batching
			b.MaxBatchSize = cmp.Or(b.MaxBatchSize, d.MaxBatchSize)
			b.MaxBatchTokens = cmp.Or(b.MaxBatchTokens, d.MaxBatchTokens)
			b.MaxQueueDelay = cmp.Or(b.MaxQueueDelay, Duration(d.MaxQueueDelay))
			b.QueueSize = cmp.Or(b.QueueSize, d.QueueSize)
			b.ConcurrentRuns = cmp.Or(b.ConcurrentRuns, onnx.DefaultConcurrentRuns(r.Device))
			if b.GatherGap == nil {
				g := Duration(d.GatherGap)
				b.GatherGap = &g
			}
		}
	case TypeKServe:
		r.Model = cmp.Or(r.Model, modelName)
		r.Protocol = cmp.Or(r.Protocol, kserve.DefaultProtocol)
		r.Logits = cmp.Or(r.Logits, kserve.DefaultLogits)
		r.Output = cmp.Or(r.Output, kserve.DefaultOutputName)
		r.Timeout = cmp.Or(r.Timeout, Duration(kserve.DefaultTimeout))
		r.TLS.CAFile = absPath(baseDir, r.TLS.CAFile)
		r.TLS.CertFile = absPath(baseDir, r.TLS.CertFile)
		r.TLS.KeyFile = absPath(baseDir, r.TLS.KeyFile)
	}
}

func orTrue(b *bool) *bool {
	if b == nil {
		t := true
		return &t
	}
	return b
}

// absPath resolves a relative file path against the registry's folder.
// URIs are left for Validate to name.
func absPath(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(baseDir, p)
}

// absURI resolves a storage URI's relative local path (plain or file://).
func absURI(baseDir, uri string) string {
	if rest, ok := strings.CutPrefix(uri, "file://"); ok && rest != "" && !filepath.IsAbs(rest) {
		return "file://" + filepath.Join(baseDir, rest)
	}
	return absPath(baseDir, uri)
}
