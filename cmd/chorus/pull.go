package main

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chorusml/chorus/storage"
)

func newPullCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pull hf://ORG/REPO[@REVISION]",
		Short: "Download a model's serving files into the Hugging Face cache",
		Long: `Download what Chorus serves from a Hugging Face Hub repo (config, tokenizer,
ONNX graph and its external data; never other weights) into the cache layout
huggingface_hub uses, then print the snapshot folder. Honours HF_TOKEN,
HF_ENDPOINT, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE. Interrupted downloads
resume; LFS files are checked against the SHA-256 the Hub announces.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := storage.Parse(args[0], ".")
			if err != nil {
				return usageError{err}
			}
			if !loc.IsHub() {
				return usageError{fmt.Errorf("%s is not an hf:// URI", args[0])}
			}
			hub := storage.HubFromEnv(os.Getenv)
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				hub.Progress = progressTo(f)
			}
			dir, err := hub.Snapshot(cmd.Context(), loc.Repo, loc.Revision)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
}

// progressTo draws one byte-counting bar per file on a terminal.
func progressTo(w io.Writer) func(name string, size, done int64) io.WriteCloser {
	return func(name string, size, done int64) io.WriteCloser {
		bar := progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		_ = bar.Set64(done)
		return barCloser{bar}
	}
}

type barCloser struct{ *progressbar.ProgressBar }

func (b barCloser) Close() error { return b.Finish() }
