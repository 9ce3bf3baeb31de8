package main

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway/config"
)

// version is set by the linker (-X main.version=...); else the module's.
var version = ""

func chorusVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// serveFlags are `chorus serve`'s flags. The single-model ones mirror the
// KServe Hugging Face server's, so its command line carries over.
type serveFlags struct {
	config    string
	httpPort  int
	ortLib    string
	logFormat string
	logLevel  string

	modelName           string
	modelDir            string
	modelID             string
	storageURI          string
	modelRevision       string
	returnProbabilities bool
	disablePostprocess  bool
	maxLength           int

	allowCalibrationMismatch bool
	httpPortSet              bool // --http_port was given (0 then means any free port)
	grpcPort                 int
	grpcPortSet              bool        // --grpc_port was given (0 then means no gRPC)
	kserve                   kserveFlags // KServe's other flags (kserveflags.go)
	watch                    bool
	pprofAddr                string
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML model registry to serve (see configs/); SIGHUP reloads it")
	fs.BoolVar(&f.watch, "watch", false, "reload the registry when its file changes")
	fs.IntVar(&f.httpPort, "http_port", 0, "HTTP port; 0 picks a free one (default: the registry's server.http_port, else 8080)")
	fs.IntVar(&f.grpcPort, "grpc_port", config.DefaultGRPCPort, "gRPC port of the Open Inference Protocol; 0 turns gRPC off (default: the registry's server.grpc_port, else 8081)")
	fs.StringVar(&f.pprofAddr, "pprof_addr", "", "serve Go's profiles (net/http/pprof, /debug/pprof/) on this address, e.g. 127.0.0.1:6060; off by default, never on the API port")
	fs.StringVar(&f.ortLib, "ort-lib", onnx.DefaultLibraryPath(), "ONNX Runtime shared library (env CHORUS_ORT_LIB)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error (the listening address is logged at any level)")
	fs.StringVar(&f.modelName, "model_name", "", "serve one model under this name (KServe style; instead of --config)")
	fs.StringVar(&f.modelDir, "model_dir", "", "Hugging Face model folder with an ONNX graph (with --model_name)")
	fs.StringVar(&f.modelID, "model_id", "", "Hugging Face Hub repo ORG/REPO to serve (with --model_name; downloaded into the HF cache)")
	fs.StringVar(&f.storageURI, "storage_uri", "", "model location: a path, file://PATH or hf://ORG/REPO[@REVISION] (with --model_name)")
	fs.StringVar(&f.modelRevision, "model_revision", "", "Hub revision for --model_id (default main)")
	fs.BoolVar(&f.returnProbabilities, "return_probabilities", false, "answer KServe's probability strings by default (with --model_name)")
	fs.BoolVar(&f.disablePostprocess, "disable_postprocess", false, "answer KServe's raw-logit strings by default (with --model_name)")
	fs.BoolVar(&f.disablePostprocess, "return_raw_logits", false, "alias of --disable_postprocess, as newer KServe releases spell it")
	fs.BoolVar(&f.allowCalibrationMismatch, "allow-calibration-mismatch", false, "use a calibration file's temperature even if it was fitted for another model fingerprint")
	fs.IntVar(&f.maxLength, "max_length", 0, "truncate texts to this many tokens (default: the model's max_position_embeddings)")
	f.kserve.register(fs, f)
}

// loadConfig builds the registry from --config or from the KServe flags.
func (f *serveFlags) loadConfig() (*config.Config, error) {
	sources := 0
	for _, v := range []string{f.modelDir, f.modelID, f.storageURI} {
		if v != "" {
			sources++
		}
	}
	single := f.modelName != "" || sources > 0
	if f.modelName != "" && sources == 0 && f.config == "" {
		// KServe's default: its storage initializer puts the model there.
		f.modelDir, sources = "/mnt/models", 1
	}
	var cfg *config.Config
	switch {
	case f.config != "" && single:
		return nil, usageError{fmt.Errorf("use either --config or --model_name with --model_dir/--model_id/--storage_uri, not both")}
	case f.config != "":
		c, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		cfg = c
	case single:
		if f.modelName == "" || sources != 1 {
			return nil, usageError{fmt.Errorf("--model_name goes with exactly one of --model_dir, --model_id, --storage_uri")}
		}
		replica := config.Replica{Type: config.TypeONNX, ModelDir: f.modelDir, StorageURI: f.storageURI, MaxLength: f.maxLength}
		if f.modelID != "" {
			replica.StorageURI = "hf://" + f.modelID
			if f.modelRevision != "" {
				replica.StorageURI += "@" + f.modelRevision
			}
		}
		cfg = (&config.Config{Models: []config.Model{{
			Name:                f.modelName,
			ReturnProbabilities: f.returnProbabilities,
			DisablePostprocess:  f.disablePostprocess,
			Replicas:            []config.Replica{replica},
		}}})
		if err := cfg.Complete("."); err != nil {
			return nil, err
		}
	default:
		return nil, usageError{fmt.Errorf("nothing to serve: pass --config FILE, or --model_name NAME --model_dir DIR")}
	}
	if f.httpPortSet {
		cfg.Server.HTTPPort = f.httpPort // 0: any free port
	}
	if f.grpcPortSet {
		cfg.Server.GRPCPort = &f.grpcPort // 0: no gRPC
	}
	return cfg, nil
}

func newRootCommand(stopSignals context.CancelFunc) *cobra.Command {
	var flags serveFlags
	root := &cobra.Command{
		Use:   "chorus",
		Short: "Chorus: a KServe-compatible inference gateway for Hugging Face text classifiers",
		Long: `Chorus serves Hugging Face text-classification models (ONNX Runtime with the
Hugging Face tokenizer) over KServe's V1 and Open Inference Protocol V2 routes.

  chorus serve --config configs/local.yaml
  chorus --model_name distilbert --model_dir ./sst2 --return_probabilities

Called with serve flags and no subcommand, chorus serves, like KServe's
Hugging Face server.`,
		Version:       chorusVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().NFlag() == 0 {
				return cmd.Help()
			}
			return serve(cmd.Context(), cmd, &flags, stopSignals)
		},
	}
	flags.register(root.Flags())

	var serveF serveFlags
	serveCmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a model registry (or one model, KServe style)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return serve(cmd.Context(), cmd, &serveF, stopSignals)
		},
	}
	serveF.register(serveCmd.Flags())

	var validatePath string
	var validatePrint bool
	validateCmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a registry file without serving it (--print: the effective registry, defaults filled in)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if validatePath == "" {
				return usageError{fmt.Errorf("--config is required")}
			}
			cfg, err := config.Load(validatePath)
			if err != nil {
				return err
			}
			if validatePrint {
				out, err := cfg.Marshal()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d models)\n", validatePath, len(cfg.Models))
			return nil
		},
	}
	validateCmd.Flags().StringVar(&validatePath, "config", "", "registry file to check")
	validateCmd.Flags().BoolVar(&validatePrint, "print", false, "print the effective registry as YAML, every default filled in")

	root.AddCommand(serveCmd, validateCmd, newPullCommand(), newCalibrateCommand(), newProbeCommand())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	return root
}
