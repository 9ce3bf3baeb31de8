package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/chorusml/chorus/internal/loadgen"
)

// modelLimit is scripts/bench/model_limit.py's answer: ONNX Runtime in
// Python running the graph alone, per layout (runs × threads) and batch
// size.
type modelLimit struct {
	Layouts     map[string]map[string]float64 `json:"layouts"`
	BestLayout  string                        `json:"best_layout"`
	BestBatch   int                           `json:"best_batch"`
	BestSeqPerS float64                       `json:"best_seq_per_s"`
}

// limitLayouts are the model-only limit's layouts, RxT: R runs at once on
// a session of T intra-op threads. Both use the 2 cores: one run of two
// threads, as ONNX Runtime's default, and two runs of one, as Chorus's
// default (two concurrent runs).
var limitLayouts = []struct{ key, name string }{{"1x2", "one run × 2 threads"}, {"2x1", "two runs × 1 thread"}}

func layoutName(key string) string {
	for _, l := range limitLayouts {
		if l.key == key {
			return l.name
		}
	}
	return key
}

// writeTexts writes the texts the load generator sends, one a line, for
// the model-only limit; the caller removes the file.
func writeTexts() (string, error) {
	f, err := os.CreateTemp("", "chorus-bench-texts-*.txt")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(strings.Join(shortTexts, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

// measureLimit runs the model-only limit on texts (writeTexts): in each of
// layouts, at each of batches, rounds times for seconds per batch size in
// all.
func (b *bench) measureLimit(texts, dir, graph string, layouts []string, batches string, rounds int, seconds float64) (modelLimit, error) {
	if b.o.quick {
		seconds /= 6
	}
	out, err := exec.Command(b.o.onnxPython, "scripts/bench/model_limit.py", "--model", dir, "--graph", graph,
		"--texts", texts, "--layouts", strings.Join(layouts, ","), "--batches", batches,
		"--rounds", strconv.Itoa(rounds), "--seconds", strconv.FormatFloat(seconds, 'f', -1, 64)).Output()
	if err != nil {
		return modelLimit{}, fmt.Errorf("model_limit.py %s: %w", graph, err)
	}
	var l modelLimit
	if err := json.Unmarshal(out, &l); err != nil {
		return modelLimit{}, fmt.Errorf("model_limit.py %s: %w", graph, err)
	}
	return l, nil
}

// limitRounds is how many times each side of the limit comparison is
// measured; the best round counts, for the model alone and for Chorus
// alike: neighbours on a shared host take CPU in bursts, and the best round
// is the least disturbed.
const limitRounds = 3

// turnRounds is how many times Chorus's default at 64 clients and the
// model alone are measured in turn; more than limitRounds, so that a burst
// of the neighbours' load falls on few of them.
const turnRounds = 5

// bestOf runs measure n times and keeps the run of highest throughput.
func bestOf(n int, measure func() loadgen.Result) loadgen.Result {
	rs := make([]loadgen.Result, n)
	for i := range rs {
		rs[i] = measure()
	}
	return best(rs)
}

// best is the run of highest throughput.
func best(rs []loadgen.Result) loadgen.Result {
	var b loadgen.Result
	for _, r := range rs {
		if r.RPS > b.RPS {
			b = r
		}
	}
	return b
}

// batchingModes are the in-process batching settings measured against the
// limit: the default first.
var batchingModes = []struct{ name, yaml string }{
	{"continuous batching (default: 2 runs at once)", ""},
	{"continuous batching, one run at a time", ", batching: {concurrent_runs: 1}"},
	{"continuous batching, no gathering (`gather_gap: 0s`)", ", batching: {gather_gap: 0s}"},
	{"batching off", ", batching: {enabled: false}"},
	{"wait-to-fill batching (max 64, 5 ms)", ", batching: {max_batch_size: 64, max_queue_delay: 5ms}"},
}

// limit measures Chorus end to end against the model-only limit, fp32 and
// int8, at 1, 8 and 64 clients, in each batching mode.
func (b *bench) limit() (string, error) {
	var out strings.Builder
	out.WriteString("\n## Chorus against the model-only limit, fp32 and int8\n\n" +
		"Full-size random DistilBERT, one-text V1 requests (the same 200 short texts everywhere), cache off. " +
		"**Model-only limit**: ONNX Runtime in Python, no server (`scripts/bench/model_limit.py`), the same graph and texts " +
		"tokenised beforehand, at batch 1, 8, 16, 32 and 64, as one run at a time on 2 intra-op threads and as two runs at once on 1 thread each, " +
		"3 rounds over the batch sizes, each size's best round counting. " +
		"The sweep picks the layout and batch size; then Chorus's default at 64 clients and the model alone in that layout and " +
		"batch size are measured in turn, 5 times each, so that whatever else the host does falls on both alike. " +
		"**The limit is the best of those 5**, as that Chorus row is the best of its 5 runs and every other row the best of 3 " +
		"(this host's neighbours take CPU in bursts; a run is only ever slowed): the sweep's own best is the highest of 30 short " +
		"measurements, which noise lifts above what a best of 5 measures, so it is reported beside, not compared against. " +
		"Chorus runs ONNX Runtime with its defaults: by default up to 2 runs at once, a run that starts alone on 2 threads, " +
		"runs that overlap on 1 thread each (`batching.concurrent_runs`), a run that would overlap another gathering the requests " +
		"still arriving until none has come for 500 µs (`batching.gather_gap`). int8 is `onnx/model_quantized.onnx` " +
		"from `scripts/onnx_tools/variants.py` (dynamic int8), served with `onnx_file`. " +
		"The load generator shares the 2 cores with the server; the limit runs alone.\n")
	texts, err := writeTexts()
	defer func() { _ = os.Remove(texts) }()
	if err != nil {
		return "", err
	}
	best := map[string]float64{}
	for _, g := range []struct{ name, file string }{{"fp32", "onnx/model.onnx"}, {"int8", "onnx/model_quantized.onnx"}} {
		section, rps, err := b.limitGraph(texts, g.name, g.file)
		if err != nil {
			return "", err
		}
		out.WriteString(section)
		best[g.name] = rps
	}
	fmt.Fprintf(&out, "\n**int8 / fp32 end to end at 64 clients: %.2f×** (goal: ≥ 3×; goal for each: ≥ 0.9× its limit).\n",
		best["int8"]/best["fp32"])
	return out.String(), nil
}

// limitRow is one Chorus row of the limit section.
type limitRow struct {
	mode    string
	clients int
	r       loadgen.Result
}

// limitGraph measures one graph: the limit's sweep, then each batching
// mode, the default's 64-client runs in turn with the limit's best layout
// and batch size. It returns the section and the default's 64-client
// throughput.
func (b *bench) limitGraph(texts, name, file string) (string, float64, error) {
	dir := filepath.Join(b.o.models, "full")
	var layouts []string
	for _, l := range limitLayouts {
		layouts = append(layouts, l.key)
	}
	lim, err := b.measureLimit(texts, dir, file, layouts, "1,8,16,32,64", limitRounds, 6)
	if err != nil {
		return "", 0, err
	}
	var rows []limitRow
	var turns, ratios []float64
	var dflt float64 // the default's best run at 64 clients
	for _, m := range batchingModes {
		ch, url, err := b.startChorus(fmt.Sprintf("models:\n  - name: m\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q, onnx_file: %q%s}]\n",
			dir, file, m.yaml))
		if err != nil {
			return "", 0, err
		}
		loadgen.Run(b.ctx, 40, 8, v1(url, "m", true))
		for _, c := range benchClients {
			if m.yaml != "" && c.c == 8 {
				continue // the comparisons that matter: lone requests and full load
			}
			run := func() loadgen.Result { return loadgen.Run(b.ctx, b.n(c.n), c.c, v1(url, "m", true)) }
			if m.yaml != "" || c.c != 64 {
				rows = append(rows, limitRow{m.name, c.c, bestOf(limitRounds, run)})
				continue
			}
			var rs []loadgen.Result
			for range turnRounds {
				r := run()
				l, err := b.measureLimit(texts, dir, file, []string{lim.BestLayout}, strconv.Itoa(lim.BestBatch), 1, 2)
				if err != nil {
					b.stop(ch)
					return "", 0, err
				}
				rs, turns, ratios = append(rs, r), append(turns, l.BestSeqPerS), append(ratios, r.RPS/l.BestSeqPerS)
			}
			rows = append(rows, limitRow{m.name, c.c, best(rs)})
			dflt = best(rs).RPS
		}
		b.stop(ch)
	}
	limit := slices.Max(turns)
	var out strings.Builder
	fmt.Fprintf(&out, "\n### %s (`%s`)\n\nModel-only limit, seq/s by batch size:", name, file)
	sep := ""
	for _, l := range limitLayouts {
		var sizes []string
		for _, bs := range []string{"1", "8", "16", "32", "64"} {
			sizes = append(sizes, fmt.Sprintf("%s: %.0f", bs, lim.Layouts[l.key][bs]))
		}
		fmt.Fprintf(&out, "%s %s: %s", sep, l.name, strings.Join(sizes, ", "))
		sep = ";"
	}
	slices.Sort(ratios)
	fmt.Fprintf(&out, " (best: %s, batch %d, %.0f seq/s). In turn with Chorus, %s, batch %d: %s; **limit %.0f seq/s**.\n\n",
		layoutName(lim.BestLayout), lim.BestBatch, lim.BestSeqPerS, layoutName(lim.BestLayout), lim.BestBatch, joinRates(turns), limit)
	out.WriteString("| Chorus | clients | requests | errors | req/s | p50 ms | p99 ms | × limit |\n|---|---|---|---|---|---|---|---|\n")
	for _, row := range rows {
		r := row.r
		fmt.Fprintf(&out, "| %s | %d | %d | %d | %.0f | %.2f | %.2f | %.2f |\n", row.mode, row.clients, r.Requests, r.Errors, r.RPS,
			ms(r.P50), ms(r.P99), r.RPS/limit)
	}
	fmt.Fprintf(&out, "\nThe default at 64 clients against the model alone measured just after it, round by round: %.2f–%.2f×, median %.2f×; "+
		"its best run against the sweep's best single measurement: %.2f×.\n",
		ratios[0], ratios[len(ratios)-1], ratios[len(ratios)/2], dflt/lim.BestSeqPerS)
	return out.String(), dflt, nil
}

// joinRates lists rates as "a, b and c seq/s".
func joinRates(rs []float64) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%.0f", r)
	}
	if len(s) == 1 {
		return s[0] + " seq/s"
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1] + " seq/s"
}
