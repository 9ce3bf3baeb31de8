package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway/config"
)

// KServe's ModelServer and Hugging Face server flags, so that a KServe
// ServingRuntime's args carry over to `chorus serve` unchanged. KServe
// ignores flags it does not know; Chorus accepts every flag KServe's
// huggingfaceserver defines, honours those that apply, and logs the rest
// as ignored (with why). Flags Chorus already had (--model_name,
// --model_dir, --model_id, --model_revision, --http_port, --grpc_port,
// --max_length, --return_probabilities, --disable_postprocess and
// --return_raw_logits) are declared in commands.go.
type kserveFlags struct {
	disableLowerCase     bool
	disableSpecialTokens bool
	tokenizerRevision    string
	dtype                string
	task                 string
	returnTokenTypeIDs   bool
	enableGRPC           strtobool

	// ignored collects the flags that were given and have no effect.
	ignored map[string]string
}

// kserveIgnored are the flags Chorus accepts and ignores, with the reason
// logged when one is given. Boolean flags of KServe that take no value
// are marked with a leading "!".
var kserveIgnored = map[string]string{
	// huggingfaceserver
	"!trust_remote_code":      "Chorus runs ONNX graphs and tokenizer.json, never repository code",
	"tensor_input_names":      "the ONNX graph declares its inputs",
	"backend":                 "Chorus always serves with ONNX Runtime",
	"!return_offsets_mapping": "token classification only",
	"!disable_log_requests":   "Chorus never logs request content",
	"max_log_len":             "Chorus never logs request content",
	"max-log-len":             "Chorus never logs request content",
	"hot-reload-config":       "use --config with --watch or SIGHUP",
	// kserve.model_server
	"workers":                           "one Go process serves every core",
	"max_threads":                       "set intra_op_threads in a --config registry",
	"max_asyncio_workers":               "Go has no asyncio pool",
	"enable_docs_url":                   "the OpenAPI document is always at /openapi.json",
	"enable_latency_logging":            "every request is logged with its duration",
	"configure_logging":                 "use --log-format and --log-level",
	"log_config_file":                   "use --log-format and --log-level",
	"access_log_format":                 "the access line has a fixed format",
	"event-loop":                        "Go has no event loop to choose",
	"timeout-keep-alive":                "set server.timeouts.idle in a --config registry",
	"predictor_host":                    "transformer mode: use a kserve replica in a --config registry",
	"protocol":                          "Chorus serves V1 and V2 at once",
	"predictor_protocol":                "transformer mode: use a kserve replica in a --config registry",
	"predictor_use_ssl":                 "transformer mode: use a kserve replica in a --config registry",
	"predictor_request_timeout_seconds": "transformer mode: use a kserve replica in a --config registry",
	"predictor_request_retries":         "transformer mode: use a kserve replica in a --config registry",
	"enable_predictor_health_check":     "transformer mode: use a kserve replica in a --config registry",
	"grpc_max_send_message_length":      "answers are bounded by the request limits",
	"grpc_max_receive_message_length":   "server.limits.max_body_bytes bounds gRPC messages as HTTP bodies",
	"ssl_certfile":                      "terminate TLS in front of Chorus (ingress or sidecar)",
	"ssl_keyfile":                       "terminate TLS in front of Chorus (ingress or sidecar)",
}

func (k *kserveFlags) register(fs *pflag.FlagSet, f *serveFlags) {
	k.ignored = map[string]string{}
	k.enableGRPC = true
	fs.IntVar(&f.maxLength, "max_model_len", 0, "alias of --max_length, as KServe's Hugging Face server spells it")
	fs.BoolVar(&k.disableLowerCase, "disable_lower_case", false, "do not lowercase (KServe; overrides the tokenizer's own setting)")
	fs.BoolVar(&k.disableSpecialTokens, "disable_special_tokens", false, "encode without [CLS]/[SEP] and the like (KServe)")
	fs.StringVar(&k.tokenizerRevision, "tokenizer_revision", "", "Hub revision of the tokenizer, with --model_id (KServe)")
	fs.StringVar(&k.dtype, "dtype", "auto", "serve the ONNX graph exported for this weight type when the folder has one (KServe: auto, float32, float, float16, half, bfloat16)")
	fs.StringVar(&k.task, "task", "", "KServe's task; Chorus serves sequence_classification only")
	fs.BoolVar(&k.returnTokenTypeIDs, "return_token_type_ids", false, "KServe's flag: Chorus feeds token_type_ids whenever the graph declares them")
	fs.Var(&k.enableGRPC, "enable_grpc", "serve gRPC (KServe; false is --grpc_port 0)")
	for name, why := range kserveIgnored {
		name, isBool := strings.CutPrefix(name, "!")
		help := "accepted for KServe and ignored: " + why
		if isBool {
			fs.Bool(name, false, help)
		} else {
			fs.String(name, "", help)
		}
	}
}

// apply folds the flags into the single-model replica and the server,
// and logs what is ignored. It runs after loadConfig for --model_name.
func (k *kserveFlags) apply(fs *pflag.FlagSet, cfg *config.Config, single bool) error {
	fs.Visit(func(fl *pflag.Flag) {
		name := fl.Name
		if why, ok := kserveIgnored[name]; ok {
			k.ignored[name] = why
		} else if why, ok := kserveIgnored["!"+name]; ok {
			k.ignored[name] = why
		}
	})
	if !slices.Contains(onnx.Dtypes, k.dtype) {
		return usageError{fmt.Errorf("--dtype %q: want one of auto, float32, float, float16, half, bfloat16", k.dtype)}
	}
	if t := k.task; t != "" && t != "sequence_classification" && t != "text_classification" {
		return usageError{fmt.Errorf("--task %s: Chorus serves sequence_classification only", t)}
	}
	if !bool(k.enableGRPC) {
		off := 0
		cfg.Server.GRPCPort = &off
	}
	if k.returnTokenTypeIDs {
		k.ignored["return_token_type_ids"] = "token_type_ids are fed whenever the graph declares them"
	}
	if !single {
		for _, name := range []string{"disable_lower_case", "disable_special_tokens", "tokenizer_revision", "dtype"} {
			if fs.Changed(name) {
				k.ignored[name] = "applies to --model_name; set it on the replicas of a --config registry"
			}
		}
		return nil
	}
	r := &cfg.Models[0].Replicas[0]
	if k.disableLowerCase {
		no := false
		r.LowerCase = &no
	}
	if k.disableSpecialTokens {
		no := false
		r.SpecialTokens = &no
	}
	r.Dtype = cmp.Or(k.dtype, r.Dtype)
	if k.tokenizerRevision != "" {
		if loc, err := r.Location(); err != nil || !loc.IsHub() {
			k.ignored["tokenizer_revision"] = "the model folder is local: its own tokenizer is served"
		} else {
			r.TokenizerRevision = k.tokenizerRevision
		}
	}
	return nil
}

// logIgnored says, once at start, which KServe flags had no effect.
func (k *kserveFlags) logIgnored(log *slog.Logger) {
	for name, why := range k.ignored {
		log.Info("kserve flag ignored", slog.String("flag", "--"+name), slog.String("reason", why))
	}
}

// strtobool is a flag that takes KServe's boolean spellings (true/false,
// yes/no, on/off, 1/0, t/f, y/n), with the value after = or a space.
type strtobool bool

func (b *strtobool) String() string { return strconv.FormatBool(bool(*b)) }
func (b *strtobool) Type() string   { return "bool" }
func (b *strtobool) Set(s string) error {
	switch strings.ToLower(s) {
	case "y", "yes", "t", "true", "on", "1":
		*b = true
	case "n", "no", "f", "false", "off", "0":
		*b = false
	default:
		return fmt.Errorf("%q is not a boolean", s)
	}
	return nil
}
