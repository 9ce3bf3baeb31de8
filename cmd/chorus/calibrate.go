package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/calibration/report"
	"github.com/chorusml/chorus/protocol"
)

type calibrateFlags struct {
	data, test        string
	config, model     string
	url               string
	logits            string
	labels            []string
	bins, batch       int
	out, plot, ortLib string
	feedback          bool
	cascadeOptions
	methodOptions
}

func newCalibrateCommand() *cobra.Command {
	var f calibrateFlags
	cmd := &cobra.Command{
		Use:   "calibrate --data VAL.jsonl (--config F --model M | --url URL --model M | --logits L.jsonl)",
		Short: "Fit a model's calibration (temperature, vector, per-label) on labelled data and report it",
		Long: `Fit a calibration on labelled data and report accuracy, NLL, Brier score,
ECE and MCE (equal-width, right-closed bins of the top-label confidence),
adaptive ECE (as many equal-mass bins) and classwise ECE (mean over classes)
before and after, on the data and on an optional --test split, with seeded
bootstrap 95% intervals of NLL and the ECEs (--bootstrap N, --seed).

Methods (--method):
  temperature        one T > 0 minimising the mean NLL of softmax(logits / T)
                     (the default; it never changes the predicted class)
  vector             a scale and a bias per class, softmax(a ∘ logits + b),
                     minimising the mean NLL + (l2/2)(Σ(a−1)² + Σb²), --l2;
                     it may change the predicted class: the report says how
                     often and the accuracy before and after
  label_temperature  a T per label of a multi-label (sigmoid) model
  platt              Platt's a, b per label of a multi-label (sigmoid) model
With --multi-label the model is sigmoid: the NLL is the binary cross-entropy
summed over labels, a line's "label" is a list of its true labels, and
temperature fits one T over every label.

The data are JSONL lines {"text": "...", "label": 1} (a label index or name).
Logits come from the registry in-process (--config, --model), from a running
gateway over V2 (--url, --model; batched, with a progress bar), or from a
file of precomputed {"logits": [...], "label": ...} lines (--logits).

With --url and --feedback nothing is fitted: each batch of --data is
answered by the gateway, then its true labels are posted to the model's
feedback endpoint, so that its chorus_confidence histogram and rolling
accuracy, NLL and ECE gauges move; the rolling metrics are printed.

Writes calibration.json (T, metrics, bins, data hashes, the model's
fingerprint and labels) for the registry's calibration: field, and a PNG of
reliability diagrams before and after with the confidence histograms.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return calibrate(cmd.Context(), cmd, &f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.data, "data", "", "labelled JSONL to fit on (required unless --logits)")
	fs.StringVar(&f.test, "test", "", "labelled JSONL held out to evaluate on (optional)")
	fs.StringVar(&f.config, "config", "", "registry to score with in-process")
	fs.StringVar(&f.model, "model", "", "model name (with --config or --url)")
	fs.StringVar(&f.url, "url", "", "running gateway to score with, e.g. http://localhost:8080")
	fs.StringVar(&f.logits, "logits", "", "JSONL of precomputed {\"logits\": [...], \"label\": ...}")
	fs.StringSliceVar(&f.labels, "labels", nil, "label names, to read named labels with --logits")
	fs.IntVar(&f.bins, "bins", 15, "reliability bins")
	fs.IntVar(&f.batch, "batch", 64, "texts per request when scoring")
	fs.StringVar(&f.out, "out", "calibration.json", "where to write the result")
	fs.StringVar(&f.plot, "plot", "", "reliability diagram PNG (default: reliability.png beside --out)")
	fs.StringVar(&f.ortLib, "ort-lib", onnx.DefaultLibraryPath(), "ONNX Runtime shared library (with --config)")
	fs.StringVar(&f.method, "method", string(calibration.MethodTemperature), "temperature, vector, label_temperature or platt")
	fs.BoolVar(&f.multiLabel, "multi-label", false, "the model is multi-label (sigmoid); labels are lists (default: true when the model is served with a sigmoid)")
	fs.Float64Var(&f.l2, "l2", calibration.DefaultL2, "L2 guard of vector, label_temperature and platt scaling")
	fs.IntVar(&f.bootstrap, "bootstrap", 0, "bootstrap resamples for 95% intervals (0: none)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the bootstrap resamples")
	fs.BoolVar(&f.feedback, "feedback", false, "with --url: replay --data's labels to the gateway's feedback endpoint instead of fitting")
	f.cascadeOptions.flags(fs)
	return cmd
}

// example is one labelled row: a text to score, or precomputed logits.
type example struct {
	Text   string          `json:"text"`
	Logits []float64       `json:"logits"`
	Label  json.RawMessage `json:"label"`
}

// scorer returns raw logits for texts, and the model's labels and fingerprint.
type scorer interface {
	score(ctx context.Context, texts []string) (protocol.Logits, error)
	labels() []string
	fingerprint() string
	// activation is what the model is served with (its metadata).
	activation() string
	close()
}

func calibrate(ctx context.Context, cmd *cobra.Command, f *calibrateFlags) error {
	if f.cascade {
		// --cascade reads --config with --logits: its own checks.
		return calibrateCascade(ctx, cmd, f)
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.plot == "" {
		f.plot = filepath.Join(filepath.Dir(f.out), "reliability.png")
	}
	if f.feedback {
		return replayFeedback(ctx, cmd, f)
	}
	stderr := cmd.ErrOrStderr()

	sc, err := f.scorer(ctx, stderr)
	if err != nil {
		return err
	}
	if sc != nil {
		defer sc.close()
	}
	labels := f.labels
	fp := ""
	if sc != nil {
		labels, fp = sc.labels(), sc.fingerprint()
		if err := f.settleActivation(cmd, sc.activation()); err != nil {
			return err
		}
	}

	dataPath := f.data
	if f.logits != "" {
		dataPath = f.logits
	}
	fit, err := loadSplit(ctx, dataPath, sc, labels, f.batch, stderr)
	if err != nil {
		return err
	}
	var test *splitData
	if f.test != "" {
		if test, err = loadSplit(ctx, f.test, sc, labels, f.batch, stderr); err != nil {
			return err
		}
	}

	c, note, err := fitCalibrator(f.methodOptions, fit)
	if err != nil {
		return err
	}
	out := calibration.File{ChorusVersion: chorusVersion(), Created: time.Now().UTC(), Model: f.model,
		Fingerprint: fp, Labels: labels, Calibrator: c, Note: note, Bins: f.bins}
	if c.Kind() != calibration.MethodTemperature || f.multiLabel {
		out.L2 = f.l2
	}
	if out.Data, err = fit.evaluate(c, f.methodOptions, f.bins); err != nil {
		return err
	}
	before, after := rowNames("data", c)
	rows := []report.Row{{Name: before, M: out.Data.Before}, {Name: after, M: out.Data.After}}
	panels := diagramPanels(out.Data, c, labels, f.multiLabel)
	if test != nil {
		s, err := test.evaluate(c, f.methodOptions, f.bins)
		if err != nil {
			return err
		}
		out.Test = &s
		before, after := rowNames("test", c)
		rows = append(rows, report.Row{Name: before, M: s.Before}, report.Row{Name: after, M: s.After})
		panels = diagramPanels(s, c, labels, f.multiLabel)
	}

	return writeCalibration(cmd.OutOrStdout(), f, out, fit, note, rows, panels)
}

// writeCalibration prints the table and writes calibration.json and the
// reliability diagrams.
func writeCalibration(w io.Writer, f *calibrateFlags, out calibration.File, fit *splitData, note string, rows []report.Row, panels []report.Panel) error {
	describe(w, out.Calibrator, out.Labels, fit, f.l2)
	if note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if err := report.Table(w, rows); err != nil {
		return err
	}
	argmaxNote(w, "data", out.Data)
	if out.Test != nil {
		argmaxNote(w, "test", *out.Test)
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.out, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.out, err)
	}
	var png bytes.Buffer
	if err := report.ReliabilityPNG(&png, panels); err != nil {
		return err
	}
	if err := os.WriteFile(f.plot, png.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.plot, err)
	}
	fmt.Fprintf(w, "wrote %s and %s\n", f.out, f.plot)
	return nil
}

// scorer scores with the registry in-process (--config) or a running
// gateway (--url); nil with --logits.
func (f *calibrateFlags) scorer(ctx context.Context, logw io.Writer) (scorer, error) {
	switch {
	case f.config != "":
		return newLocalScorer(ctx, f, logw)
	case f.url != "":
		return newRemoteScorer(ctx, f)
	}
	return nil, nil
}

// check refuses flag combinations that cannot work.
func (f *calibrateFlags) check() error {
	sources := 0
	for _, s := range []string{f.config, f.url, f.logits} {
		if s != "" {
			sources++
		}
	}
	switch {
	case sources != 1:
		return usageError{fmt.Errorf("give exactly one of --config, --url, --logits")}
	case f.logits == "" && (f.data == "" || f.model == ""):
		return usageError{fmt.Errorf("--data and --model are required with --config or --url")}
	case f.bins < 1 || f.batch < 1:
		return usageError{fmt.Errorf("--bins and --batch must be positive")}
	case f.feedback && (f.url == "" || f.multiLabel):
		return usageError{fmt.Errorf("--feedback replays single-label data to a running gateway: it needs --url, not --multi-label")}
	}
	if err := f.methodOptions.check(); err != nil {
		return usageError{err}
	}
	return nil
}

// splitData is a scored data split.
type splitData struct {
	path   string
	sha    string
	logits [][]float64
	labels []int   // the label of each example; -1 where it gave a list
	sets   [][]int // the true labels of each example (multi-label)
}

func (s *splitData) n() int { return len(s.labels) }

// loadSplit reads a JSONL split and scores its texts (unless it carries logits).
func loadSplit(ctx context.Context, path string, sc scorer, labels []string, batch int, progress io.Writer) (*splitData, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read data: %w", err)
	}
	sum := sha256.Sum256(raw)
	s := &splitData{path: path, sha: hex.EncodeToString(sum[:])}
	var texts []string
	sc2 := bufio.NewScanner(bytes.NewReader(raw))
	sc2.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc2.Scan(); line++ {
		if strings.TrimSpace(sc2.Text()) == "" {
			continue
		}
		var ex example
		if err := json.Unmarshal(sc2.Bytes(), &ex); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		y, set, err := labelSet(ex.Label, labels)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if sc == nil {
			if len(ex.Logits) == 0 {
				return nil, fmt.Errorf("%s:%d: no \"logits\" (with --logits every line carries them)", path, line)
			}
			s.logits = append(s.logits, ex.Logits)
		} else {
			texts = append(texts, ex.Text)
		}
		s.labels = append(s.labels, y)
		s.sets = append(s.sets, set)
	}
	if err := sc2.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(s.labels) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	if sc == nil {
		return s, nil
	}
	bar := newBar(progress, len(texts), "scoring "+filepath.Base(path))
	for i := 0; i < len(texts); i += batch {
		l, err := sc.score(ctx, texts[i:min(i+batch, len(texts))])
		if err != nil {
			return nil, fmt.Errorf("score %s: %w", path, err)
		}
		for _, row := range l {
			r := make([]float64, len(row))
			for j, v := range row {
				r[j] = float64(v)
			}
			s.logits = append(s.logits, r)
		}
		_ = bar.Add(len(l))
	}
	_ = bar.Finish()
	return s, nil
}

// labelIndex reads a label given as an index or as a name.
func labelIndex(raw json.RawMessage, labels []string) (int, error) {
	var i int
	if err := json.Unmarshal(raw, &i); err == nil {
		return i, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return 0, fmt.Errorf("label %s: want an index or a name", raw)
	}
	for j, l := range labels {
		if l == name {
			return j, nil
		}
	}
	return 0, fmt.Errorf("label %q is not one of %v (pass --labels with --logits)", name, labels)
}

// newBar draws a progress bar with an ETA on a terminal, and nothing elsewhere.
func newBar(w io.Writer, n int, what string) *progressbar.ProgressBar {
	if f, ok := w.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		w = io.Discard
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}
