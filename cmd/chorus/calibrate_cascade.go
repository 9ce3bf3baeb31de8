package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/calibration/report"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/protocol"
)

// cascadeOptions are calibrate's --cascade flags.
type cascadeOptions struct {
	cascade    bool
	tolerance  float64
	confidence float64
	saveLogits string
}

func (o *cascadeOptions) flags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.cascade, "cascade", false, "with --config: sweep the first stage's min_confidence of cascade --model on --data (table and PNG) instead of fitting")
	fs.Float64Var(&o.tolerance, "tolerance", 0.001, "with --cascade: accuracy the cascade may lose against its last stage alone (0.001: 0.1 points)")
	fs.Float64Var(&o.confidence, "confidence", 0.95, "with --cascade: confidence of the upper bound on the accuracy lost that must be within --tolerance")
	fs.StringVar(&o.saveLogits, "save-logits", "", "with --cascade: also write each text's stages' calibrated logits, side by side, as a --logits file for a later --cascade --logits run")
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

// cascadeSplit is a labelled split scored by every stage of a cascade.
type cascadeSplit struct {
	stages []string
	mins   []float64 // each stage's min_confidence (the last one's is 0)
	split  *splitData
	// rows[s][i] is stage s's calibrated logits for text i.
	rows [][][]float64
}

// calibrateCascade scores --data with every stage of the cascade (or reads
// the stages' logits from --logits), then sweeps the first stage's
// threshold (the later stages keep theirs) and reports, per threshold, the
// share the first stage answers, the cascade's accuracy and NLL, and the
// texts it loses against the last stage alone with an upper confidence
// bound of their rate; it suggests the lowest threshold whose bound is
// within --tolerance (calibration.SuggestCascadeThreshold says why a bound
// and not the accuracy on the data).
func calibrateCascade(ctx context.Context, cmd *cobra.Command, f *calibrateFlags) error {
	if err := f.checkCascade(); err != nil {
		return err
	}
	cs, err := loadCascadeSplit(ctx, f, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	points, alone, configured, err := cs.sweep(f.confidence)
	if err != nil {
		return err
	}
	lastAlone := alone[len(alone)-1]
	best, found := calibration.SuggestCascadeThreshold(points, f.tolerance)

	w := cmd.OutOrStdout()
	if err := printCascadeTable(w, f, cs, alone, configured, points, best, found); err != nil {
		return err
	}
	suggested := -1.0
	if found {
		suggested = best.Threshold
		fmt.Fprintf(w, "suggested: min_confidence %.4g: the first stage answers %.1f%% with accuracy %.4f (last stage alone %.4f); "+
			"against the last stage it loses %d texts and gains %d: at %g%% confidence it loses at most %.4f (tolerance %g)\n",
			best.Threshold, 100*best.Share, best.Accuracy, lastAlone.Accuracy, best.Lost, best.Gained, 100*f.confidence, best.LossBound, f.tolerance)
	} else {
		fmt.Fprintf(w, "no threshold bounds the accuracy lost against the last stage within %g at %g%% confidence: keep the last stage alone, or score more data\n",
			f.tolerance, 100*f.confidence)
	}
	if !cmd.Flags().Changed("plot") {
		f.plot = filepath.Join(filepath.Dir(f.out), "cascade.png")
	}
	if err := writeCascadePlot(f, points, lastAlone.Accuracy, suggested); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s\n", f.plot)
	if cmd.Flags().Changed("out") {
		b, err := json.MarshalIndent(map[string]any{"model": f.model, "stages": cs.stages, "data": cs.split.path,
			"tolerance": f.tolerance, "confidence": f.confidence,
			"suggested": best, "found": found, "last_stage_alone": lastAlone, "points": points}, "", "  ")
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

// checkCascade refuses flag combinations --cascade cannot use.
func (f *calibrateFlags) checkCascade() error {
	switch {
	case f.config == "" || f.model == "" || f.url != "" || f.multiLabel:
		return usageError{fmt.Errorf("--cascade scores a cascade in-process: give --config and --model (not --url or --multi-label)")}
	case f.logits == "" && f.data == "":
		return usageError{fmt.Errorf("--cascade needs --data (or --logits written by --save-logits)")}
	case f.logits != "" && (f.data != "" || f.saveLogits != ""):
		return usageError{fmt.Errorf("--cascade --logits reads the stages' logits instead of scoring --data: give one, and no --save-logits")}
	case !(f.tolerance >= 0):
		return usageError{fmt.Errorf("--tolerance %v: want >= 0", f.tolerance)}
	case !(f.confidence > 0 && f.confidence < 1):
		return usageError{fmt.Errorf("--confidence %v: want in (0, 1)", f.confidence)}
	case f.batch < 1:
		return usageError{fmt.Errorf("--batch must be positive")}
	}
	return nil
}

// loadCascadeSplit scores --data with every stage (writing --save-logits),
// or reads the stages' logits from --logits with the stages of --config.
func loadCascadeSplit(ctx context.Context, f *calibrateFlags, logw io.Writer) (*cascadeSplit, error) {
	cs := &cascadeSplit{}
	if f.logits != "" {
		cfg, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		m, err := cascadeModel(cfg, f)
		if err != nil {
			return nil, err
		}
		for _, st := range m.Stages {
			cs.stages, cs.mins = append(cs.stages, st.Name), append(cs.mins, st.MinConfidence)
		}
		if cs.split, err = loadSplit(ctx, f.logits, nil, f.labels, f.batch, logw); err != nil {
			return nil, err
		}
	} else {
		sc, err := newCascadeScorer(ctx, f, logw)
		if err != nil {
			return nil, err
		}
		defer sc.close()
		if a := sc.activation(); a != string(calibration.ActivationSoftmax) {
			return nil, usageError{fmt.Errorf("--cascade sweeps single-label (softmax) cascades; %s scores with %s", f.model, a)}
		}
		cs.stages, cs.mins = sc.scores.Stages, sc.scores.MinConfidence
		if cs.split, err = loadSplit(ctx, f.data, sc, sc.labels(), f.batch, logw); err != nil {
			return nil, err
		}
		if f.saveLogits != "" {
			if err := writeLogits(f.saveLogits, cs.split); err != nil {
				return nil, err
			}
		}
	}
	return cs, cs.splitStages()
}

// sweep evaluates the cascade at every threshold of the grid, each stage
// alone and the configured threshold, all judged against the last stage.
func (cs *cascadeSplit) sweep(confidence float64) (points, alone []calibration.CascadePoint, configured calibration.CascadePoint, err error) {
	labels, nst := cs.split.labels, len(cs.stages)
	last := cs.rows[nst-1]
	rest, _ := calibration.CascadeAnswers(cs.rows[1:], cs.mins[1:])
	if points, err = calibration.CascadeSweep(cs.rows[0], rest, last, labels, calibration.CascadeThresholds(len(last[0])), confidence); err != nil {
		return nil, nil, configured, err
	}
	for s := range nst {
		p, err := calibration.CascadeSweep(cs.rows[s], cs.rows[s], last, labels, []float64{0}, confidence)
		if err != nil {
			return nil, nil, configured, err
		}
		alone = append(alone, p[0])
	}
	c, err := calibration.CascadeSweep(cs.rows[0], rest, last, labels, []float64{cs.mins[0]}, confidence)
	if err != nil {
		return nil, nil, configured, err
	}
	return points, alone, c[0], nil
}

// splitStages cuts each row into the stages' logits, k labels each.
func (cs *cascadeSplit) splitStages() error {
	nst := len(cs.stages)
	width := len(cs.split.logits[0])
	k := width / nst
	cs.rows = make([][][]float64, nst)
	for i, row := range cs.split.logits {
		if k < 2 || len(row) != nst*k {
			return fmt.Errorf("%s: row %d has %d logits: want %d stages of the same k >= 2 labels", cs.split.path, i+1, len(row), nst)
		}
		if y := cs.split.labels[i]; y < 0 || y >= k {
			return fmt.Errorf("%s: row %d: label %d of %d", cs.split.path, i+1, y, k)
		}
		for s := range nst {
			cs.rows[s] = append(cs.rows[s], row[s*k:(s+1)*k])
		}
	}
	return nil
}

// writeLogits writes a scored split as --logits lines.
func writeLogits(path string, s *splitData) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write logits: %w", err)
	}
	enc := json.NewEncoder(out)
	for i, row := range s.logits {
		if err := enc.Encode(example{Logits: row, Label: json.RawMessage(fmt.Sprint(s.labels[i]))}); err != nil {
			out.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return out.Close()
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

// cascadeModel finds cascade --model in cfg.
func cascadeModel(cfg *config.Config, f *calibrateFlags) (config.Model, error) {
	i := slices.IndexFunc(cfg.Models, func(m config.Model) bool { return m.Name == f.model })
	if i < 0 || !cfg.Models[i].IsCascade() {
		return config.Model{}, usageError{fmt.Errorf("--cascade: %q is not a cascade of %s", f.model, f.config)}
	}
	return cfg.Models[i], nil
}

func newCascadeScorer(ctx context.Context, f *calibrateFlags, logw io.Writer) (*cascadeScorer, error) {
	// The stages' own calibration counts here: it is what min_confidence reads.
	l, err := openLocal(ctx, f, logw, false, func(cfg *config.Config) error {
		_, err := cascadeModel(cfg, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &cascadeScorer{local: l}
	if c.scores, err = l.scorer.CascadeScores(ctx, l.reg, f.model, []string{""}); err != nil {
		l.close()
		return nil, err
	}
	return c, nil
}
