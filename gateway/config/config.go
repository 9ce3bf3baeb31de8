package config

import "github.com/chorusml/chorus/storage"

// Config is a whole registry file.
type Config struct {
	// Server holds listener settings and request limits.
	Server Server `yaml:"server"`
	// Models are the models served, each addressed by name.
	Models []Model `yaml:"models"`
}

// Server settings.
type Server struct {
	// Host is the listen address. Default "" (every interface).
	Host string `yaml:"host"`
	// HTTPPort is the port of the REST API. Default 8080.
	HTTPPort int `yaml:"http_port"`
	// ShutdownGrace is how long in-flight requests may take to finish after
	// SIGTERM. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Limits bound what one request may ask for.
	Limits Limits `yaml:"limits"`
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
}

// Default limits.
const (
	DefaultHTTPPort     = 8080
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxInstances = 256
	DefaultMaxTextChars = 100_000
)

// Model is one entry of the registry.
type Model struct {
	// Name addresses the model in /v1/models/{name} and /v2/models/{name}.
	// Letters, digits, '.', '_' and '-'. Required, unique.
	Name string `yaml:"name"`
	// Version, if set, is reported as model_version and makes
	// /v2/models/{name}/versions/{version} resolve. Default: none (null).
	Version string `yaml:"version"`
	// ReturnProbabilities makes the default output KServe's probability
	// strings, as the KServe Hugging Face server's --return_probabilities.
	// Default false.
	ReturnProbabilities bool `yaml:"return_probabilities"`
	// DisablePostprocess makes the default output KServe's raw-logit
	// strings, as --disable_postprocess. Default false.
	DisablePostprocess bool `yaml:"disable_postprocess"`
	// Replicas serve the model; requests are spread over them. At least one.
	Replicas []Replica `yaml:"replicas"`
}

// Replica is one backend serving a model.
type Replica struct {
	// Type of backend: "onnx" (in-process ONNX Runtime). Required.
	Type string `yaml:"type"`
	// ModelDir is a Hugging Face model folder with an ONNX graph
	// (onnx/model.onnx or model.onnx), config.json and tokenizer.json (or
	// vocab.txt). Relative paths are resolved against the registry file.
	// One of model_dir and storage_uri is required.
	ModelDir string `yaml:"model_dir"`
	// StorageURI is where the model folder lives: a local path, file://PATH
	// or hf://ORG/REPO[@REVISION] (downloaded into the Hugging Face cache,
	// honouring HF_TOKEN, HF_ENDPOINT, HF_HOME/HF_HUB_CACHE, HF_HUB_OFFLINE).
	StorageURI string `yaml:"storage_uri"`
	// Location is model_dir or storage_uri, parsed; set by Validate.
	Location storage.Location `yaml:"-"`
	// MaxLength truncates texts to this many tokens. Default: the model's
	// max_position_embeddings.
	MaxLength int `yaml:"max_length"`
	// IntraOpThreads for ONNX Runtime. Default 0: one per core.
	IntraOpThreads int `yaml:"intra_op_threads"`
}

// Backend types.
const TypeONNX = "onnx"
