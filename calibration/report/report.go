// Package report renders calibration results for people: a plain-text
// table of metrics and reliability diagrams as PNG (gonum/plot). It writes
// to the io.Writer it is given and opens nothing.
package report

import (
	"fmt"
	"image/color"
	"io"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/chorusml/chorus/calibration"
)

// Row is one line of the metrics table.
type Row struct {
	Name string
	M    calibration.Metrics
}

// Table writes the metrics side by side.
func Table(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tn\taccuracy\tNLL\tBrier\tECE\tMCE\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t\n", r.Name, r.M.N, r.M.Accuracy, r.M.NLL, r.M.Brier, r.M.ECE, r.M.MCE)
	}
	return tw.Flush()
}

var (
	barColor  = color.RGBA{R: 66, G: 133, B: 244, A: 255}
	gapColor  = color.RGBA{R: 234, G: 67, B: 53, A: 120}
	histColor = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

// Panel is one reliability diagram: a title and its metrics.
type Panel struct {
	Title string
	M     calibration.Metrics
}

// ReliabilityPNG draws the panels side by side, each a reliability diagram
// (accuracy per confidence bin against the diagonal, the gap to it shaded)
// above a histogram of the confidences, and writes a PNG.
func ReliabilityPNG(w io.Writer, panels []Panel) error {
	const width, height = 5.5 * vg.Inch, 6 * vg.Inch
	img := vgimg.New(width*vg.Length(len(panels)), height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: len(panels), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for c, p := range panels {
		top, err := reliability(p)
		if err != nil {
			return err
		}
		bottom, err := histogram(p.M)
		if err != nil {
			return err
		}
		top.Draw(tiles.At(dc, c, 0))
		bottom.Draw(tiles.At(dc, c, 1))
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(w); err != nil {
		return fmt.Errorf("write PNG: %w", err)
	}
	return nil
}

func reliability(p Panel) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s\nECE %.4f  MCE %.4f  NLL %.4f  acc %.3f", p.Title, p.M.ECE, p.M.MCE, p.M.NLL, p.M.Accuracy)
	pl.X.Label.Text = "confidence (top label)"
	pl.Y.Label.Text = "accuracy"
	pl.X.Min, pl.X.Max, pl.Y.Min, pl.Y.Max = 0, 1, 0, 1
	acc := &plotter.Histogram{FillColor: barColor, LineStyle: plotter.DefaultLineStyle}
	gap := &plotter.Histogram{FillColor: gapColor}
	for _, b := range p.M.Bins {
		if b.Count == 0 {
			continue
		}
		acc.Bins = append(acc.Bins, plotter.HistogramBin{Min: b.Lo, Max: b.Hi, Weight: b.Accuracy})
		gap.Bins = append(gap.Bins, plotter.HistogramBin{Min: b.Lo, Max: b.Hi, Weight: b.Confidence})
	}
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	if len(acc.Bins) > 0 {
		pl.Add(gap, acc)
		pl.Legend.Add("accuracy", acc)
		pl.Legend.Add("mean confidence", gap)
	}
	pl.Add(diag)
	pl.Legend.Add("perfect calibration", diag)
	pl.Legend.Top, pl.Legend.Left = true, true
	return pl, nil
}

// histogram shows how many samples fall in each bin, on a log scale: a
// confident model puts nearly all of them in the top bin, and the few
// elsewhere are what the diagram above is made of.
func histogram(m calibration.Metrics) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = "samples per bin (log scale)"
	pl.X.Label.Text = "confidence (top label)"
	pl.Y.Label.Text = "samples"
	pl.X.Min, pl.X.Max = 0, 1
	pl.Y.Scale = plot.LogScale{}
	pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	h := &plotter.Histogram{FillColor: histColor}
	top := 1.0
	for _, b := range m.Bins {
		if b.Count == 0 {
			continue // log scale: empty bins are left blank
		}
		h.Bins = append(h.Bins, plotter.HistogramBin{Min: b.Lo, Max: b.Hi, Weight: float64(b.Count)})
		top = max(top, float64(b.Count))
	}
	// Bars start at 0.5 so that a bin of one sample still shows.
	if len(h.Bins) > 0 {
		pl.Add(&floored{h, 0.5})
	}
	pl.Y.Min, pl.Y.Max = 0.5, top*2
	return pl, nil
}

// floored draws a histogram whose bars start at a floor instead of 0, which
// a log scale cannot show.
type floored struct {
	*plotter.Histogram
	floor float64
}

func (f *floored) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, b := range f.Bins {
		x0, x1 := trX(b.Min), trX(b.Max)
		y0, y1 := trY(f.floor), trY(b.Weight)
		pts := []vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}}
		c.FillPolygon(f.FillColor, c.ClipPolygonXY(pts))
	}
}

func (f *floored) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, _, ymax = f.Histogram.DataRange()
	return xmin, xmax, f.floor, ymax
}
