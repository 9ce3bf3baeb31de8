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
	"gonum.org/v1/plot/plotutil"
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

// Table writes the metrics side by side, with their bootstrap intervals
// where the metrics carry them. ECE is on equal-width bins, adaptive ECE on
// equal-mass bins, classwise ECE the mean over classes.
func Table(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tn\taccuracy\tNLL\tBrier\tECE\tadaptive ECE\tclasswise ECE\tMCE\t")
	for _, r := range rows {
		m := r.M
		var nll, ece, aece, cece string
		if ci := m.CI; ci != nil {
			nll, ece, aece, cece = span(m.NLL, ci.NLL), span(m.ECE, ci.ECE), span(m.AdaptiveECE, ci.AdaptiveECE), span(m.ClasswiseECE, ci.ClasswiseECE)
		} else {
			nll, ece, aece, cece = fmt.Sprintf("%.4f", m.NLL), fmt.Sprintf("%.4f", m.ECE), fmt.Sprintf("%.4f", m.AdaptiveECE), fmt.Sprintf("%.4f", m.ClasswiseECE)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%s\t%.4f\t%s\t%s\t%s\t%.4f\t\n", r.Name, m.N, m.Accuracy, nll, m.Brier, ece, aece, cece, m.MCE)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) > 0 && rows[0].M.CI != nil {
		ci := rows[0].M.CI
		_, err := fmt.Fprintf(w, "[brackets: %.0f%% bootstrap intervals, %d resamples, seed %d]\n", 100*ci.Level, ci.Resamples, ci.Seed)
		return err
	}
	return nil
}

func span(v float64, iv calibration.Interval) string {
	return fmt.Sprintf("%.4f [%.4f, %.4f]", v, iv.Lo, iv.Hi)
}

var (
	barColor  = color.RGBA{R: 66, G: 133, B: 244, A: 255}
	gapColor  = color.RGBA{R: 234, G: 67, B: 53, A: 120}
	histColor = color.RGBA{R: 120, G: 120, B: 120, A: 255}
	bandColor = color.RGBA{R: 20, G: 20, B: 20, A: 110}
)

// Panel is one reliability diagram: a title and its metrics. Classes names
// the classes (labels) for the per-class diagram, drawn when there are at
// most MaxClassPanel of them. MultiLabel says the bins pool every label's
// probability (a sigmoid model) rather than the top label's.
type Panel struct {
	Title      string
	M          calibration.Metrics
	Classes    []string
	MultiLabel bool
}

// MaxClassPanel is the most classes drawn in a per-class diagram; beyond it
// the lines are unreadable.
const MaxClassPanel = 10

// ReliabilityPNG draws the panels side by side, each a reliability diagram
// (accuracy per confidence bin against the diagonal, the gap to it shaded,
// and the bootstrap interval of each bin's accuracy when the metrics carry
// intervals) above a histogram of the confidences and, for at most
// MaxClassPanel classes, a per-class reliability diagram; and writes a PNG.
func ReliabilityPNG(w io.Writer, panels []Panel) error {
	rows := 2
	for _, p := range panels {
		if perClass(p) {
			rows = 3
		}
	}
	const width, height = 5.5 * vg.Inch, 3 * vg.Inch
	img := vgimg.New(width*vg.Length(len(panels)), height*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: len(panels), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for c, p := range panels {
		top, err := reliability(p)
		if err != nil {
			return err
		}
		bottom, err := histogram(p)
		if err != nil {
			return err
		}
		top.Draw(tiles.At(dc, c, 0))
		bottom.Draw(tiles.At(dc, c, 1))
		if perClass(p) {
			pc, err := classes(p)
			if err != nil {
				return err
			}
			pc.Draw(tiles.At(dc, c, 2))
		}
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(w); err != nil {
		return fmt.Errorf("write PNG: %w", err)
	}
	return nil
}

func perClass(p Panel) bool {
	k := len(p.M.ClassBins)
	return k > 0 && k <= MaxClassPanel
}

func xLabel(p Panel) string {
	if p.MultiLabel {
		return "predicted probability (every label)"
	}
	return "confidence (top label)"
}

func reliability(p Panel) (*plot.Plot, error) {
	pl := plot.New()
	m := p.M
	pl.Title.Text = fmt.Sprintf("%s\nECE %.4f  adaptive %.4f  MCE %.4f  NLL %.4f  acc %.3f", p.Title, m.ECE, m.AdaptiveECE, m.MCE, m.NLL, m.Accuracy)
	if ci := m.CI; ci != nil {
		pl.Title.Text += fmt.Sprintf("\n%.0f%% CI: ECE [%.4f, %.4f]  adaptive [%.4f, %.4f]  NLL [%.4f, %.4f]",
			100*ci.Level, ci.ECE.Lo, ci.ECE.Hi, ci.AdaptiveECE.Lo, ci.AdaptiveECE.Hi, ci.NLL.Lo, ci.NLL.Hi)
	}
	pl.X.Label.Text = xLabel(p)
	pl.Y.Label.Text = "accuracy"
	if p.MultiLabel {
		pl.Y.Label.Text = "fraction true"
	}
	headroom(pl)
	acc := &plotter.Histogram{FillColor: barColor, LineStyle: plotter.DefaultLineStyle}
	gap := &plotter.Histogram{FillColor: gapColor}
	band := &bands{color: bandColor}
	for b, bin := range m.Bins {
		if bin.Count == 0 {
			continue
		}
		acc.Bins = append(acc.Bins, plotter.HistogramBin{Min: bin.Lo, Max: bin.Hi, Weight: bin.Accuracy})
		gap.Bins = append(gap.Bins, plotter.HistogramBin{Min: bin.Lo, Max: bin.Hi, Weight: bin.Confidence})
		if m.CI != nil && b < len(m.CI.Bins) {
			band.add(bin.Lo, bin.Hi, m.CI.Bins[b])
		}
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
	if len(band.boxes) > 0 {
		pl.Add(band)
		pl.Legend.Add(fmt.Sprintf("%.0f%% interval of the accuracy", 100*m.CI.Level), band)
	}
	pl.Add(diag)
	pl.Legend.Add("perfect calibration", diag)
	return pl, nil
}

// headroom fixes the axes at [0, 1] with space above the data for the
// legend, so that it hides no bar.
func headroom(pl *plot.Plot) {
	pl.X.Min, pl.X.Max, pl.Y.Min, pl.Y.Max = 0, 1, 0, 1.36
	pl.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
	pl.Legend.Top, pl.Legend.Left = true, true
	pl.Legend.TextStyle.Font.Size = vg.Points(9)
	pl.Legend.Padding = vg.Points(0.5)
}

// classes draws each class's reliability: the frequency of the class among
// samples whose predicted probability of it falls in a bin, against their
// mean probability, a line per class with its interval as error bars.
func classes(p Panel) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("per class (classwise ECE %.4f)", p.M.ClasswiseECE)
	pl.X.Label.Text = "predicted probability of the class"
	pl.Y.Label.Text = "frequency of the class"
	headroom(pl)
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	pl.Add(diag)
	for j, bins := range p.M.ClassBins {
		var pts plotter.XYs
		var errs plotter.YErrors
		for b, bin := range bins {
			if bin.Count == 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: bin.Confidence, Y: bin.Accuracy})
			if ci := p.M.CI; ci != nil && j < len(ci.ClassBins) {
				iv := ci.ClassBins[j][b]
				errs = append(errs, struct{ Low, High float64 }{bin.Accuracy - iv.Lo, iv.Hi - bin.Accuracy})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		c := plotutil.Color(j)
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(j)
		pl.Add(line, points)
		if len(errs) == len(pts) {
			eb, err := plotter.NewYErrorBars(struct {
				plotter.XYer
				plotter.YErrorer
			}{pts, errs})
			if err != nil {
				return nil, err
			}
			eb.Color = c
			pl.Add(eb)
		}
		name := fmt.Sprint(j)
		if j < len(p.Classes) {
			name = p.Classes[j]
		}
		pl.Legend.Add(fmt.Sprintf("%s (ECE %.4f)", name, p.M.ClassECE[j]), line, points)
	}
	if k := len(p.M.ClassBins); k > 5 {
		pl.Legend.TextStyle.Font.Size = vg.Points(7) // up to 10 entries in the headroom
	}
	return pl, nil
}

// bands shades each bin's accuracy interval as a box across the middle of
// the bin, with the bin's accuracy as its centre line.
type bands struct {
	color color.Color
	boxes []box
}

type box struct{ x0, x1, y0, y1 float64 }

func (b *bands) add(lo, hi float64, iv calibration.Interval) {
	if iv.Lo == 0 && iv.Hi == 0 {
		return // no replicate filled the bin
	}
	w := (hi - lo) * 0.3
	b.boxes = append(b.boxes, box{lo + w, hi - w, iv.Lo, iv.Hi})
}

func (b *bands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, bx := range b.boxes {
		x0, x1 := trX(bx.x0), trX(bx.x1)
		y0, y1 := trY(bx.y0), trY(bx.y1)
		if y1-y0 < vg.Points(1.5) { // a degenerate interval still shows
			y0, y1 = y0-vg.Points(0.75), y1+vg.Points(0.75)
		}
		pts := []vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}}
		c.FillPolygon(b.color, c.ClipPolygonXY(pts))
		c.StrokeLines(draw.LineStyle{Color: color.Black, Width: vg.Points(0.5)}, c.ClipLinesXY(append(pts, pts[0]))...)
	}
}

// Thumbnail draws the legend entry.
func (b *bands) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(b.color, c.ClipPolygonY(pts))
}

// histogram shows how many samples fall in each bin, on a log scale: a
// confident model puts nearly all of them in the top bin, and the few
// elsewhere are what the diagram above is made of.
func histogram(p Panel) (*plot.Plot, error) {
	m := p.M
	pl := plot.New()
	pl.Title.Text = "samples per bin (log scale)"
	pl.X.Label.Text = xLabel(p)
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
