package config

import (
	"cmp"

	"github.com/chorusml/chorus/storage"
)

// Config is a whole registry file.
type Config struct {
	// Server holds listener settings and request limits.
	Server Server `yaml:"server"`
	// Cache stores raw logits per text, for every model that allows it.
	Cache Cache `yaml:"cache"`
	// Auth requires API keys on the model routes.
	Auth Auth `yaml:"auth"`
	// Models are the models served, each addressed by name.
	Models []Model `yaml:"models"`
}

// Cache configures the logits cache. Without a Redis url or addrs, an
// in-process LRU is used.
type Cache struct {
	// Enabled turns the cache on. Default true.
	Enabled *bool `yaml:"enabled"`
	// URL of Redis: redis://[user:password@]host:port[/db], or rediss://
	// for TLS. The password may also come from $CHORUS_REDIS_PASSWORD.
	URL string `yaml:"url"`
	// Addrs are Sentinel (with master_name) or Cluster seeds, instead of url.
	Addrs      []string `yaml:"addrs,omitempty"`
	MasterName string   `yaml:"master_name"`
	// TTL of an entry unless its model says otherwise. Default 24h.
	TTL Duration `yaml:"ttl"`
	// Timeout bounds every Redis call; past it requests go on without the
	// cache. Default 20ms.
	Timeout Duration `yaml:"timeout"`
	// WriteQueue bounds asynchronous fills (batches); past it they are
	// dropped and counted. Default 1024.
	WriteQueue int `yaml:"write_queue"`
	// MaxEntries bounds the in-process LRU. Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// Namespace prefixes every key. Default "chorus".
	Namespace string `yaml:"namespace"`
}

// ModelCache is a model's cache settings.
type ModelCache struct {
	// Enabled lets the cache serve this model. Default true.
	Enabled *bool `yaml:"enabled"`
	// TTL overrides the cache's TTL for this model.
	TTL Duration `yaml:"ttl"`
}

// Server settings.
type Server struct {
	// Host is the listen address. Default "" (every interface).
	Host string `yaml:"host"`
	// HTTPPort is the port of the REST API. Default 8080.
	HTTPPort int `yaml:"http_port"`
	// GRPCPort is the port of the Open Inference Protocol over gRPC, as
	// KServe's --grpc_port. Default 8081; 0 turns gRPC off.
	GRPCPort *int `yaml:"grpc_port"`
	// ShutdownGrace is how long in-flight requests may take to finish after
	// SIGTERM. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Limits bound what one request may ask for.
	Limits Limits `yaml:"limits"`
	// Timeouts of the HTTP server (slow clients cannot hold connections).
	Timeouts Timeouts `yaml:"timeouts"`
	// Monitoring bounds what the gateway keeps to watch calibration in
	// production (chorus_confidence, POST /v2/models/{name}/feedback and
	// the chorus_rolling_* gauges).
	Monitoring Monitoring `yaml:"monitoring"`
	// TimingHeaders adds TEI's timing headers (x-compute-time,
	// x-tokenization-time, x-queue-time, x-inference-time, x-compute-tokens)
	// to every inference answer. Default true.
	TimingHeaders *bool `yaml:"timing_headers"`
	// GCPercent is the Go garbage collector's target (GOGC) for the
	// gateway process; the GOGC environment variable, when set, wins.
	// Default 400.
	GCPercent int `yaml:"gc_percent"`
}

// Monitoring bounds the answers kept for feedback. Zero means the default.
type Monitoring struct {
	// Window is how many of a model's most recent labelled answers the
	// rolling accuracy, NLL and ECE gauges cover. Default 1000.
	Window int `yaml:"window"`
	// Remember is how many answered texts, over all models, are kept by
	// request id for feedback to name later; the oldest requests are
	// forgotten first. Each costs 4 bytes a label plus about 100 bytes.
	// Default 100000.
	Remember int `yaml:"remember"`
}

// Timeouts of the HTTP server. Zero means the default.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers. Default 10s.
	ReadHeader Duration `yaml:"read_header"`
	// Read bounds reading a whole request. Default 30s.
	Read Duration `yaml:"read"`
	// Write bounds writing a response. Default 60s.
	Write Duration `yaml:"write"`
	// Idle bounds a keep-alive connection's wait for its next request. Default 120s.
	Idle Duration `yaml:"idle"`
}

// Auth configures API keys. Without a keys file every client is let in.
type Auth struct {
	// KeysFile lists the API keys (see configs/auth/keys.example.yaml); relative
	// to this file.
	KeysFile string `yaml:"keys_file"`
}

// Limits bound one request. Zero means the default.
type Limits struct {
	// MaxBodyBytes is the largest request body accepted (413 past it).
	// Default 4 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInstances is the most texts one request may carry (413 past it).
	// Default 256.
	MaxInstances int `yaml:"max_instances"`
	// MaxTextChars is the most characters (Unicode code points) one text
	// may have (413 past it). Default 100000.
	MaxTextChars int `yaml:"max_text_chars"`
	// MaxInFlight bounds requests served at once; past it: 503 with
	// Retry-After, at once. Default 1024.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxHeaderBytes bounds a request's headers. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// Model is one entry of the registry.
type Model struct {
	// Name addresses the model in /v1/models/{name} and /v2/models/{name}.
	// Letters, digits, '.', '_' and '-'. Required, unique.
	Name string `yaml:"name"`
	// Labels are the class names by index. Optional for in-process models
	// (checked against each backend's config.json when given); required when
	// any replica is remote, since remote protocols do not carry them.
	Labels []string `yaml:"labels,omitempty"`
	// Version, if set, is reported as model_version and makes
	// /v2/models/{name}/versions/{version} resolve. Default: none (null).
	// Exclusive with versions.
	Version string `yaml:"version"`
	// ReturnProbabilities makes the default output KServe's probability
	// strings, as the KServe Hugging Face server's --return_probabilities.
	// Default false.
	ReturnProbabilities bool `yaml:"return_probabilities"`
	// DisablePostprocess makes the default output KServe's raw-logit
	// strings, as --disable_postprocess. Default false.
	DisablePostprocess bool `yaml:"disable_postprocess"`
	// Replicas serve the model; requests are spread over them. At least one,
	// unless versions are given.
	Replicas []Replica `yaml:"replicas,omitempty"`
	// Versions serve the model side by side, each with its own replicas:
	// /v2/models/{name}/versions/{v}/infer picks one; unversioned requests
	// go to default_version, or are split by the versions' traffic.
	Versions []Version `yaml:"versions,omitempty"`
	// DefaultVersion takes unversioned requests when no version sets
	// traffic. Default: the first version.
	DefaultVersion string `yaml:"default_version"`
	// Pool tunes how requests are spread over replicas.
	Pool Pool `yaml:"pool"`
	// Cache is this model's use of the logits cache.
	Cache ModelCache `yaml:"cache"`
	// LongText is how texts longer than the model takes are classified:
	// truncated (default) or in windows (see LongText).
	LongText LongText `yaml:"long_text"`
	// Activation turns logits into scores (probabilities, KServe's
	// probability strings, the labels and scores outputs, mean_probs):
	// softmax, sigmoid (multi-label: one independent score per label) or
	// none (the logits themselves, for regression heads). Default: as
	// transformers' text-classification pipeline picks it from the model's
	// config.json (multi_label_classification or one label: sigmoid;
	// regression: none; else softmax); softmax for remote replicas, which
	// do not say.
	Activation string `yaml:"activation"`
	// Threshold is the score at or above which a label is returned by the
	// labels output (V1 output "labels", V2 output "labels"). Default 0.5.
	Threshold float64 `yaml:"threshold"`
	// Temperature divides the logits before the activation (probabilities
	// and KServe's probability strings; labels and raw logits are
	// unchanged). Must be > 0. Default 1. Exclusive with calibration.
	Temperature float64 `yaml:"temperature"`
	// Calibration is a calibration.json written by `chorus calibrate`; its
	// temperature is used after checking that it names this model's
	// fingerprint and labels (serve --allow-calibration-mismatch skips the
	// check). Relative to this file.
	Calibration string `yaml:"calibration"`
	// Members make this model an ensemble of other models in the registry
	// (not ensembles themselves). Exclusive with replicas and versions.
	Members []Member `yaml:"members,omitempty"`
	// Combine is how an ensemble combines members: mean_logits (default:
	// weighted logit averaging), mean_probs or majority_vote. The model's
	// temperature/calibration applies after combining.
	Combine string `yaml:"combine"`
	// MinMembers lets an ensemble answer when some members fail, combining
	// what answered with renormalised weights. Default: all members.
	MinMembers int `yaml:"min_members"`
	// Stages make this model a cascade (see Stage): each text is answered
	// by the first stage whose calibrated top-label probability reaches its
	// min_confidence, else by the last. Exclusive with replicas, versions
	// and members; a cascade has no temperature or calibration of its own.
	Stages []Stage `yaml:"stages,omitempty"`
	// OnStageFailure is what a cascade does when a stage other than the
	// last fails: fail (default: the request fails, 503 when the stage's
	// replicas are down) or next (its texts go on to the next stage).
	OnStageFailure string `yaml:"on_stage_failure"`
}

// Member is one model of an ensemble.
type Member struct {
	// Name of a model in the registry. Required.
	Name string `yaml:"name"`
	// Weight in the combination. Default 1.
	Weight float64 `yaml:"weight"`
	// LabelMap renames the member's labels to the ensemble's (member label:
	// ensemble label), for members whose labels differ in name or order.
	LabelMap map[string]string `yaml:"label_map,omitempty"`
}

// IsEnsemble reports whether the model combines other models.
func (m Model) IsEnsemble() bool { return len(m.Members) > 0 }

// Version is one version of a model.
type Version struct {
	// Name of the version, as in /versions/{name}. Required, unique.
	Name string `yaml:"name"`
	// Traffic is the percentage of unversioned requests this version takes
	// (a canary rollout, like KServe's canaryTrafficPercent). Either every
	// version's traffic is 0 (default_version takes all) or they sum to 100.
	Traffic int `yaml:"traffic"`
	// Replicas serve this version. At least one.
	Replicas []Replica `yaml:"replicas,omitempty"`
}

// Pool tunes replica selection, retries and health. Zero means the default.
type Pool struct {
	// Policy: least_outstanding (default: power of two choices by requests
	// in flight), round_robin, or weighted (by replica weight).
	Policy string `yaml:"policy"`
	// Attempts per request, the first included, each on another replica.
	// Default 3.
	Attempts int `yaml:"attempts"`
	// Budget bounds the time of all attempts together. Default 30s.
	Budget Duration `yaml:"budget"`
	// MaxInFlight bounds concurrent requests per replica. Default 0: none.
	MaxInFlight int `yaml:"max_in_flight"`
	// Ejection takes a replica out after consecutive failures.
	Ejection Ejection `yaml:"ejection"`
	// Health checks remote replicas actively.
	Health Health `yaml:"health"`
	// Breaker is the per-replica circuit breaker.
	Breaker Breaker `yaml:"breaker"`
}

// Ejection is passive health checking.
type Ejection struct {
	// After this many consecutive failures (default 3) a replica is out for
	// Base (default 1s), doubling per ejection in a row up to Max (default 30s).
	After int      `yaml:"after"`
	Base  Duration `yaml:"base"`
	Max   Duration `yaml:"max"`
}

// Health is active health checking of remote replicas
// (GET /v2/models/{m}/ready, or /v1/models/{m} for V1).
type Health struct {
	// Interval between checks (default 2s; "-1s" turns checks off).
	Interval Duration `yaml:"interval"`
	// Timeout of one check (default 1s).
	Timeout Duration `yaml:"timeout"`
	// Fall failed checks in a row mark a replica down (default 2); Rise
	// good ones bring it back (default 1).
	Fall int `yaml:"fall"`
	Rise int `yaml:"rise"`
}

// Breaker opens when, within Window (default 10s), at least MinRequests
// (default 10) requests were made and FailureRatio (default 0.5) of them
// failed; after Timeout (default 5s) it lets one probe through.
type Breaker struct {
	MinRequests  int      `yaml:"min_requests"`
	FailureRatio float64  `yaml:"failure_ratio"`
	Window       Duration `yaml:"window"`
	Timeout      Duration `yaml:"timeout"`
}

// Replica is one backend serving a model.
type Replica struct {
	// Type of backend: "onnx" (in-process ONNX Runtime) or "kserve" (a
	// remote KServe V1 / Open Inference Protocol V2 server). Required.
	Type string `yaml:"type"`
	// Weight is the replica's share under the weighted policy. Default 1.
	Weight int `yaml:"weight"`

	// type: onnx

	// ModelDir is a Hugging Face model folder with an ONNX graph
	// (onnx/model.onnx or model.onnx), config.json and tokenizer.json (or
	// vocab.txt). Relative paths are resolved against the registry file.
	// One of model_dir and storage_uri is required.
	ModelDir string `yaml:"model_dir"`
	// StorageURI is where the model folder lives: a local path, file://PATH
	// or hf://ORG/REPO[@REVISION] (downloaded into the Hugging Face cache,
	// honouring HF_TOKEN, HF_ENDPOINT, HF_HOME/HF_HUB_CACHE, HF_HUB_OFFLINE).
	StorageURI string `yaml:"storage_uri"`
	// MaxLength truncates texts to this many tokens. Default: the model's
	// max_position_embeddings.
	MaxLength int `yaml:"max_length"`
	// ONNXFile chooses the graph when the folder or Hub repo has several,
	// as a path inside it: e.g. onnx/model_quantized.onnx or
	// onnx/model_fp16.onnx (the transformers.js / optimum layout). From
	// hf:// only that graph and its external data are downloaded. Default:
	// onnx/model.onnx, else model.onnx.
	ONNXFile string `yaml:"onnx_file"`
	// IntraOpThreads for ONNX Runtime. Default 0: one per core.
	IntraOpThreads int `yaml:"intra_op_threads"`
	// InterOpThreads for ONNX Runtime. Default 0: ONNX Runtime's choice.
	InterOpThreads int `yaml:"inter_op_threads"`
	// IntraOpSpin is how long ONNX Runtime's idle intra-op threads spin
	// before they sleep; 0s turns spinning off. Default 100us: long enough
	// to bridge the gaps inside a run, short enough to leave the cores to
	// the server between runs.
	IntraOpSpin *Duration `yaml:"intra_op_spin"`
	// GraphOptimization: disable, basic, extended or all. Default: all
	// (ONNX Runtime's default).
	GraphOptimization string `yaml:"graph_optimization"`
	// MemoryArena turns ONNX Runtime's CPU memory arena on or off. Default on.
	MemoryArena *bool `yaml:"memory_arena"`
	// Device: cpu (default) or cuda:N.
	Device string `yaml:"device"`
	// MaxRequestTokens bounds one request's tokens, all texts together
	// (413 past it). Default 0: no bound.
	MaxRequestTokens int `yaml:"max_request_tokens"`
	// Batching runs concurrent requests to this replica together. Default
	// on: continuous batching (no queue delay).
	Batching Batching `yaml:"batching"`
	// LowerCase overrides the tokenizer's lowercasing (KServe's
	// --disable_lower_case is lower_case: false). Default: as tokenizer.json says.
	LowerCase *bool `yaml:"lower_case"`
	// SpecialTokens adds [CLS]/[SEP] and the like (KServe's
	// --disable_special_tokens is special_tokens: false). Default true.
	SpecialTokens *bool `yaml:"special_tokens"`
	// Dtype serves the graph exported for a weight type when the folder has
	// it (float16 or half: onnx/model_fp16.onnx; bfloat16:
	// onnx/model_bf16.onnx), as KServe's --dtype; otherwise the fp32 graph.
	// One of auto, float32, float, float16, half, bfloat16. Default auto.
	Dtype string `yaml:"dtype"`
	// TokenizerRevision takes the tokenizer from another revision of an
	// hf:// storage_uri, as KServe's --tokenizer_revision. Default: the
	// model's revision.
	TokenizerRevision string `yaml:"tokenizer_revision"`

	// type: kserve

	// URL is the remote server's base URL (http:// or https://). Required.
	URL string `yaml:"url"`
	// Model is the model's name on the remote. Default: this model's name.
	Model string `yaml:"model"`
	// Protocol is v1, v2 (HTTP) or grpc (the Open Inference Protocol's
	// gRPC service; url then gives host and port, http:// for plaintext,
	// https:// for TLS). Default v2.
	Protocol string `yaml:"protocol"`
	// Logits says how raw logits come back: "kserve" (default: KServe's
	// Hugging Face server with --disable_postprocess) or "tensor" (an FP32
	// output, as another Chorus gives).
	Logits string `yaml:"logits"`
	// Output names the tensor with logits: default "logits".
	Output string `yaml:"output"`
	// Revision declares the remote model's version; change it when the
	// remote model changes, so cached logits are not reused. Default "".
	Revision string `yaml:"revision"`
	// Timeout bounds one attempt. Default 10s.
	Timeout Duration `yaml:"timeout"`
	// Headers are sent with every request, e.g. Host for a KServe ingress.
	Headers map[string]string `yaml:"headers,omitempty"`
	// TLS configures https:// URLs.
	TLS TLS `yaml:"tls"`
}

// Batching configures dynamic batching of an in-process replica: up to
// concurrent_runs runs at a time, each up to max_batch_size texts and
// max_batch_tokens padded tokens, grouped by length. By default it is
// continuous: an idle replica runs a lone request at once, and requests
// that arrive during a run form the next one. With max_queue_delay set, a
// batch's first request also waits up to that long for others.
type Batching struct {
	// Enabled turns batching on or off; off, every request runs on its own,
	// concurrently. Default true.
	Enabled *bool `yaml:"enabled"`
	// MaxBatchSize texts per run. Default 32.
	MaxBatchSize int `yaml:"max_batch_size"`
	// MaxBatchTokens bounds texts × longest text per run. Default 8192.
	MaxBatchTokens int `yaml:"max_batch_tokens"`
	// MaxQueueDelay is how long a batch's first request waits for others.
	// Default 0: continuous batching, no wait.
	MaxQueueDelay Duration `yaml:"max_queue_delay"`
	// QueueSize bounds waiting requests; past it: 503 with Retry-After.
	// Default 1024.
	QueueSize int `yaml:"queue_size"`
	// ConcurrentRuns is how many runs may be in progress at once. On a
	// CPU a run that starts while the replica is idle takes every intra-op
	// thread; runs that overlap share them, from a second copy of the
	// graph. Default: 2 on a CPU with two cores or more, else 1.
	ConcurrentRuns int `yaml:"concurrent_runs"`
	// GatherGap: a run that would start while another is in progress
	// first gathers the requests still arriving, until none has come for
	// this long (at most 10 gaps in all). 0s: it starts at once. Default
	// 500µs.
	GatherGap *Duration `yaml:"gather_gap"`
}

// TLS options for a remote replica.
type TLS struct {
	// CAFile verifies the server with these CAs instead of the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify skips verification. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Location is where an onnx replica's model folder is: model_dir or
// storage_uri, parsed (Complete made relative paths absolute).
func (r *Replica) Location() (storage.Location, error) {
	return storage.Parse(cmp.Or(r.StorageURI, r.ModelDir), "")
}

// Backend types.
const (
	TypeONNX   = "onnx"
	TypeKServe = "kserve"
	// ProtocolGRPC makes a kserve replica call the Open Inference
	// Protocol's gRPC service (backends/oipgrpc) instead of V1/V2 HTTP.
	ProtocolGRPC = "grpc"
)
