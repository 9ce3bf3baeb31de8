package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/chorusml/chorus/calibration"
)

// tableThreshold keeps the table short: every 0.05, every 0.001 from
// 0.99, and 0.9995, 0.9999 and 1.
func tableThreshold(t float64) bool {
	c := int(t*10000 + 0.5)
	return c%500 == 0 || (c >= 9900 && c%10 == 0) || c == 9995 || c == 9999
}

// printCascadeTable prints each stage alone, the configured threshold,
// the sweep and the suggestion. lost and gained count texts against the
// last stage alone (it right and the cascade wrong, and the reverse); the
// bound is the upper confidence bound of lost/n the suggestion reads.
func printCascadeTable(w io.Writer, f *calibrateFlags, cs *cascadeSplit, alone []calibration.CascadePoint,
	configured calibration.CascadePoint, points []calibration.CascadePoint, best calibration.CascadePoint, found bool) error {
	fmt.Fprintf(w, "cascade %s: stages %v on %s (%d texts)\n", f.model, cs.stages, filepath.Base(cs.split.path), cs.split.n())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tmin_confidence\tfirst stage\taccuracy\tNLL\tlost\tgained\tloss bound %g%%\t\n", 100*f.confidence)
	for s, p := range alone {
		fmt.Fprintf(tw, "%s alone\t\t\t%.4f\t%.4f\t%d\t%d\t%.4f\t\n", cs.stages[s], p.Accuracy, p.NLL, p.Lost, p.Gained, p.LossBound)
	}
	row := func(name string, p calibration.CascadePoint) {
		fmt.Fprintf(tw, "%s\t%.4g\t%.1f%%\t%.4f\t%.4f\t%d\t%d\t%.4f\t\n", name, p.Threshold, 100*p.Share, p.Accuracy, p.NLL, p.Lost, p.Gained, p.LossBound)
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
