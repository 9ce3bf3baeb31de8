package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/chorusml/chorus/calibration"
)

// tail spreads the confident end of the threshold axis, where sure models
// put most texts: x = -log10(1 - t), so that 0.9, 0.99 and 0.999 are
// equally spaced (1 sits at 5, beside 0.9999).
func tail(t float64) float64 { return -math.Log10(max(1-t, 1e-5)) }

// tailTicks label the tail axis with thresholds.
var tailTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, l := range []string{"0.5", "0.9", "0.99", "0.999", "0.9999", "1"} {
		t, _ := strconv.ParseFloat(l, 64)
		if x := tail(t); x >= lo-1e-9 && x <= hi+1e-9 {
			out = append(out, plot.Tick{Value: x, Label: l})
		}
	}
	return out
})

// CascadePNG draws, against the first stage's threshold (on a scale that
// spreads its confident end), the share of
// texts the first stage answers and the cascade's accuracy, with the last
// stage's accuracy alone as a dashed line and the suggested threshold as a
// vertical one (suggested < 0: none), and writes a PNG.
func CascadePNG(w io.Writer, title string, points []calibration.CascadePoint, lastAcc, suggested float64) error {
	if len(points) == 0 {
		return fmt.Errorf("cascade plot: no points")
	}
	share, acc := make(plotter.XYs, len(points)), make(plotter.XYs, len(points))
	lo, hi := 1.0, 0.0
	for i, p := range points {
		share[i] = plotter.XY{X: tail(p.Threshold), Y: p.Share}
		acc[i] = plotter.XY{X: tail(p.Threshold), Y: p.Accuracy}
		lo, hi = min(lo, p.Accuracy), max(hi, p.Accuracy)
	}
	top := plot.New()
	top.Title.Text = title
	top.X.Label.Text = "first stage's min_confidence"
	top.X.Tick.Marker = tailTicks
	top.Y.Label.Text = "accuracy"
	pad := max((hi-lo)*0.1, 0.002)
	top.Y.Min, top.Y.Max = max(0, min(lo, lastAcc)-pad), min(1, max(hi, lastAcc)+pad)
	al, err := plotter.NewLine(acc)
	if err != nil {
		return fmt.Errorf("cascade plot: %w", err)
	}
	al.Color = color.RGBA{B: 200, A: 255}
	ref, err := plotter.NewLine(plotter.XYs{{X: tail(points[0].Threshold), Y: lastAcc}, {X: tail(points[len(points)-1].Threshold), Y: lastAcc}})
	if err != nil {
		return fmt.Errorf("cascade plot: %w", err)
	}
	ref.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	ref.Color = color.Gray{Y: 100}
	top.Add(al, ref)
	top.Legend.Add("cascade", al)
	top.Legend.Add("last stage alone", ref)
	top.Legend.Top, top.Legend.Left = false, true

	bottom := plot.New()
	bottom.X.Label.Text = "first stage's min_confidence"
	bottom.X.Tick.Marker = tailTicks
	bottom.Y.Label.Text = "share answered by the first stage"
	bottom.Y.Min, bottom.Y.Max = 0, 1
	sl, err := plotter.NewLine(share)
	if err != nil {
		return fmt.Errorf("cascade plot: %w", err)
	}
	sl.Color = color.RGBA{G: 140, A: 255}
	bottom.Add(sl)
	if suggested >= 0 {
		for i, pl := range []*plot.Plot{top, bottom} {
			v, err := plotter.NewLine(plotter.XYs{{X: tail(suggested), Y: pl.Y.Min}, {X: tail(suggested), Y: pl.Y.Max}})
			if err != nil {
				return fmt.Errorf("cascade plot: %w", err)
			}
			v.Color = color.RGBA{R: 200, A: 255}
			pl.Add(v)
			if i == 0 {
				top.Legend.Add(fmt.Sprintf("suggested %.4g", suggested), v)
			}
		}
	}

	const width, height = 6 * vg.Inch, 3 * vg.Inch
	img := vgimg.New(width, 2*height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	top.Draw(tiles.At(dc, 0, 0))
	bottom.Draw(tiles.At(dc, 0, 1))
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("write PNG: %w", err)
	}
	return nil
}
