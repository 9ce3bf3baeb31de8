package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/calibration/report"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/assemble"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/storage"
)

// cascadeOptions are calibrate's --cascade flags.
type cascadeOptions struct {
	cascade   bool
	tolerance float64
}

func (o *cascadeOptions) flags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.cascade, "cascade", false, "with --config: sweep the first stage's min_confidence of cascade --model on --data (table and PNG) instead of fitting")
	fs.Float64Var(&o.tolerance, "tolerance", 0.001, "with --cascade: accuracy the cascade may lose against its last stage alone (0.001: 0.1 points)")
}

// cascadeScorer scores every stage of a cascade in-process; a row is the
// stages' calibrated logits side by side (k per stage), so that loadSplit
// reads and scores the split once.
type cascadeScorer struct {
	local  *localScorer
	scores gateway.CascadeScores // stage names, thresholds, labels
}

func (c *cascadeScorer) score(ctx context.Context, texts []string) (protocol.Logits, error) {
	s, err := c.local.scorer.CascadeScores(ctx, c.local.reg, c.local.model, texts)
	if err != nil {
		return nil, err
	}
	out := make(protocol.Logits, len(texts))
	for i := range texts {
		for _, st := range s.Calibrated {
			out[i] = append(out[i], st[i]...)
		}
	}
	return out, nil
}
func (c *cascadeScorer) labels() []string    { return c.scores.Labels }
func (c *cascadeScorer) fingerprint() string { return "" }
func (c *cascadeScorer) activation() string  { return c.scores.Activation }
func (c *cascadeScorer) close()              { c.local.close() }

// calibrateCascade scores --data with every stage of the cascade, then
// sweeps the first stage's threshold (the later stages keep theirs) and
// reports, per threshold, the share the first stage answers and the
// cascade's accuracy and NLL; it suggests the lowest threshold whose
// accuracy is within --tolerance of the last stage alone.
func calibrateCascade(ctx context.Context, cmd *cobra.Command, f *calibrateFlags) error {
	if f.config == "" || f.logits != "" || f.url != "" || f.multiLabel {
		return usageError{fmt.Errorf("--cascade scores a cascade in-process: give --config and --model (not --url, --logits or --multi-label)")}
	}
	if !(f.tolerance >= 0) {
		return usageError{fmt.Errorf("--tolerance %v: want >= 0", f.tolerance)}
	}
	cs, err := newCascadeScorer(ctx, f, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer cs.close()
	if a := cs.activation(); a != string(calibration.ActivationSoftmax) {
		return usageError{fmt.Errorf("--cascade sweeps single-label (softmax) cascades; %s scores with %s", f.model, a)}
	}
	split, err := loadSplit(ctx, f.data, cs, cs.labels(), f.batch, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	k, nst := len(cs.labels()), len(cs.scores.Stages)
	stages := make([][][]float64, nst)
	for _, row := range split.logits {
		for s := range nst {
			stages[s] = append(stages[s], row[s*k:(s+1)*k])
		}
	}
	rest, _ := calibration.CascadeAnswers(stages[1:], cs.scores.MinConfidence[1:])
	points, err := calibration.CascadeSweep(stages[0], rest, split.labels, calibration.CascadeThresholds(k))
	if err != nil {
		return err
	}
	alone := func(s int) calibration.CascadePoint {
		p, _ := calibration.CascadeSweep(stages[s], stages[s], split.labels, []float64{0})
		return p[0]
	}
	configured, _ := calibration.CascadeSweep(stages[0], rest, split.labels, []float64{cs.scores.MinConfidence[0]})
	last := alone(nst - 1)
	best, found := calibration.SuggestCascadeThreshold(points, last.Accuracy, f.tolerance)

	w := cmd.OutOrStdout()
	if err := printCascadeTable(w, f, cs.scores.Stages, split.n(), alone, configured[0], points, best, found); err != nil {
		return err
	}
	suggested := -1.0
	if found {
		suggested = best.Threshold
		fmt.Fprintf(w, "suggested: min_confidence %.4g: the first stage answers %.1f%% with accuracy %.4f (last stage alone %.4f, tolerance %g)\n",
			best.Threshold, 100*best.Share, best.Accuracy, last.Accuracy, f.tolerance)
	} else {
		fmt.Fprintf(w, "no threshold reaches accuracy %.4f - %g: keep the last stage alone\n", last.Accuracy, f.tolerance)
	}
	if !cmd.Flags().Changed("plot") {
		f.plot = filepath.Join(filepath.Dir(f.out), "cascade.png")
	}
	if err := writeCascadePlot(f, points, last.Accuracy, suggested); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s\n", f.plot)
	if cmd.Flags().Changed("out") {
		b, err := json.MarshalIndent(map[string]any{"model": f.model, "stages": cs.scores.Stages, "data": f.data,
			"suggested": best, "found": found, "last_stage_alone": last, "points": points}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.out, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.out, err)
		}
		fmt.Fprintf(w, "wrote %s\n", f.out)
	}
	return nil
}

// tableThreshold keeps the table short: every 0.05 and the confident tail.
func tableThreshold(t float64) bool {
	c := int(t*1000 + 0.5)
	return c%50 == 0 || t > 0.99
}

func writeCascadePlot(f *calibrateFlags, points []calibration.CascadePoint, lastAcc, suggested float64) error {
	out, err := os.Create(f.plot)
	if err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	if err := report.CascadePNG(out, "cascade "+f.model, points, lastAcc, suggested); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func newCascadeScorer(ctx context.Context, f *calibrateFlags, logw io.Writer) (*cascadeScorer, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(cfg.Models, func(m config.Model) bool { return m.Name == f.model })
	if i < 0 || !cfg.Models[i].IsCascade() {
		return nil, usageError{fmt.Errorf("--cascade: %q is not a cascade of %s", f.model, f.config)}
	}
	rt, err := onnx.NewRuntime(f.ortLib)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The stages' own calibration counts here: it is what min_confidence reads.
	reg, err := assemble.Registry(ctx, cfg, assemble.Deps{Runtime: rt, Hub: storage.HubFromEnv(os.Getenv), Log: log})
	if err != nil {
		rt.Close()
		return nil, err
	}
	l := &localScorer{scorer: gateway.NewScorer(gateway.CacheOptions{}, nil), reg: reg, rt: rt, model: f.model}
	c := &cascadeScorer{local: l}
	if c.scores, err = l.scorer.CascadeScores(ctx, reg, f.model, []string{""}); err != nil {
		l.close()
		return nil, err
	}
	return c, nil
}

// printCascadeTable prints each stage alone, the configured threshold,
// the sweep and the suggestion.
func printCascadeTable(w io.Writer, f *calibrateFlags, stages []string, n int, alone func(int) calibration.CascadePoint,
	configured calibration.CascadePoint, points []calibration.CascadePoint, best calibration.CascadePoint, found bool) error {
	fmt.Fprintf(w, "cascade %s: stages %v on %s (%d texts)\n", f.model, stages, filepath.Base(f.data), n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tmin_confidence\tfirst stage\taccuracy\tNLL\t")
	for s := range stages {
		p := alone(s)
		fmt.Fprintf(tw, "%s alone\t\t\t%.4f\t%.4f\t\n", stages[s], p.Accuracy, p.NLL)
	}
	row := func(name string, p calibration.CascadePoint) {
		fmt.Fprintf(tw, "%s\t%.4g\t%.1f%%\t%.4f\t%.4f\t\n", name, p.Threshold, 100*p.Share, p.Accuracy, p.NLL)
	}
	row("configured", configured)
	for _, p := range points {
		if tableThreshold(p.Threshold) {
			row("", p)
		}
	}
	if found {
		row("suggested", best)
	}
	return tw.Flush()
}
