package report

import (
	"bytes"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chorusml/chorus/calibration"
)

// scores draws n samples of k classes, over-confident by 2.
func scores(n, k int) ([][]float64, []int) {
	r := rand.New(rand.NewPCG(1, 2))
	z, y := make([][]float64, n), make([]int, n)
	for i := range z {
		u := make([]float64, k)
		for j := range u {
			u[j] = r.NormFloat64() * 2
		}
		p, c, v := calibration.Softmax(u, 1), 0.0, r.Float64()
		y[i] = k - 1
		for j, pj := range p {
			if c += pj; v < c {
				y[i] = j
				break
			}
		}
		for j := range u {
			u[j] *= 2
		}
		z[i] = u
	}
	return z, y
}

func metrics(t *testing.T, n, k int) calibration.Metrics {
	t.Helper()
	z, y := scores(n, k)
	m, err := calibration.Evaluate(z, y, 1, 15)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := calibration.Bootstrap(z, y, 1, 15, 100, 7)
	if err != nil {
		t.Fatal(err)
	}
	m.CI = &ci
	return m
}

func TestTableShowsIntervals(t *testing.T) {
	m := metrics(t, 500, 3)
	var b bytes.Buffer
	if err := Table(&b, []Row{{Name: "data", M: m}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"adaptive ECE", "classwise ECE", "seed 7", "100 resamples"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	// ECE and its interval, as the metrics have them.
	if want := span(m.ECE, m.CI.ECE); !strings.Contains(out, want) {
		t.Errorf("no %q in\n%s", want, out)
	}
}

// The per-class row is drawn for up to MaxClassPanel classes only.
func TestReliabilityPNGRows(t *testing.T) {
	for _, c := range []struct{ k, rows int }{{3, 3}, {MaxClassPanel + 1, 2}} {
		m := metrics(t, 400, c.k)
		var b bytes.Buffer
		if err := ReliabilityPNG(&b, []Panel{{Title: "before", M: m}, {Title: "after", M: m}}); err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(&b)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.rows * 3 * 96; cfg.Height < want-2 || cfg.Height > want+2 {
			t.Errorf("k=%d: %d px high, want %d rows (%d px)", c.k, cfg.Height, c.rows, want)
		}
	}
}

func TestCascadePNG(t *testing.T) {
	pts := []calibration.CascadePoint{{Threshold: 0.5, Share: 1, Accuracy: 0.8}, {Threshold: 0.9, Share: 0.7, Accuracy: 0.9}, {Threshold: 1, Share: 0, Accuracy: 0.91}}
	var b bytes.Buffer
	if err := CascadePNG(&b, "c", pts, 0.91, 0.9); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() < 400 || r.Dy() < r.Dx() {
		t.Errorf("image %v: want two panels, one above the other", r)
	}
	if err := CascadePNG(&b, "c", nil, 0.9, -1); err == nil {
		t.Error("no points drawn without an error")
	}
}
