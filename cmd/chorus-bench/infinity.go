package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/protocol"
)

// infinityBatchSize is Infinity's --batch-size: Chorus's default
// max_batch_size (backends/onnx DefaultBatching), so both servers bound a
// batch alike; infinity_test.go keeps the two equal.
const infinityBatchSize = 32

// infinityTolerance bounds |Δ probability| between Chorus and Infinity on
// the same texts: both run the same weights in fp32, so anything larger
// means they are not serving the same model.
const infinityTolerance = 1e-4

// infinityEngine is one way of starting Infinity on the model.
type infinityEngine struct {
	name string // row label
	what string // for the report's sentence
	args []string
}

// infinityEngines are the engines measured. optimum runs ONNX Runtime on
// the graph Chorus serves, by default rewritten at start by ONNX Runtime's
// transformer optimizer: the first row is that engine as a user gets it,
// the second runs the very graph Chorus runs. torch is Infinity's default
// engine, and the one whose classifier batches at the model.
var infinityEngines = []infinityEngine{
	{"Infinity, optimum (ORTOptimizer, its default)", "`--engine optimum`, which by default rewrites the graph at start with ONNX Runtime's transformer optimizer (optimum's `ORTOptimizer`, level 99)",
		[]string{"--engine", "optimum"}},
	{"Infinity, optimum (graph as is)", "`--engine optimum --onnx-disable-optimize` (the very graph Chorus runs)",
		[]string{"--engine", "optimum", "--onnx-disable-optimize"}},
	{"Infinity, torch", "`--engine torch` (its default engine: PyTorch fp32 with BetterTransformer, its default, on `model.safetensors`, the weights the graph was exported from)",
		[]string{"--engine", "torch"}},
}

// benchClients are the loads of the limit and Infinity sections: a lone
// client, some, and many. Many send 30 requests each, so that the run is
// mostly steady state, as the model-only limit is: at 10 each, the first
// and last batches (partly filled) cost about 4 %.
var benchClients = []struct{ c, n int }{{1, 200}, {8, 400}, {64, 1920}}

// infinityModelDir lays dir out the way Infinity's optimum engine can load
// it: the graph as model.onnx at the top of a folder of links to dir's
// files. Infinity 0.0.78 hands optimum the path of onnx/model.onnx as a
// file name, which optimum 1.27 refuses ("Trying to load
// /…/onnx/model.onnx but only found model.onnx"); a graph at the top of a
// folder served as "." reaches optimum as plain "model.onnx".
func infinityModelDir(dir, graph string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	out, err := os.MkdirTemp("", "chorus-bench-infinity-model-*")
	if err != nil {
		return "", err
	}
	link := func(from, to string) {
		if err == nil {
			err = os.Symlink(filepath.Join(dir, from), filepath.Join(out, to))
		}
	}
	for _, e := range entries {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".onnx") {
			link(e.Name(), e.Name())
		}
	}
	link(graph, "model.onnx")
	if err != nil {
		_ = os.RemoveAll(out)
		return "", fmt.Errorf("infinity model folder: %w", err)
	}
	return out, nil
}

// startInfinity runs Infinity's own CLI (`infinity_emb v2`, beside the
// venv's python) in modelDir, serving "." as model m on the CPU. hfHome is
// a fresh HF_HOME: Infinity keeps optimised graphs there under the model's
// path ("."), so a shared one would hand this model another's graph. Its
// warm-up is off: it sends 512-token texts, which its optimum classifier
// does not truncate, and 512 + [CLS] + [SEP] overflows DistilBERT's
// positions (ONNX Runtime: "Attempting to broadcast an axis by a dimension
// other than 1. 512 by 514"); the bench warms it with the load instead.
func (b *bench) startInfinity(modelDir, hfHome string, engineArgs []string) (*exec.Cmd, string, error) {
	// Absolute: env -C runs it from modelDir.
	cli, err := filepath.Abs(filepath.Join(filepath.Dir(b.o.infinityPython), "infinity_emb"))
	if err != nil {
		return nil, "", err
	}
	args := []string{"-C", modelDir, "HF_HOME=" + hfHome, "HF_HUB_OFFLINE=1", "DO_NOT_TRACK=1", "INFINITY_ANONYMOUS_USAGE_STATS=0",
		cli, "v2", "--model-id", ".", "--served-model-name", "m", "--device", "cpu",
		"--batch-size", fmt.Sprint(infinityBatchSize), "--no-model-warmup", "--no-vector-disk-cache",
		"--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"}
	// env -C: Infinity must run in modelDir; start runs name with args.
	return b.start("/health", "env", append(args, engineArgs...)...)
}

// infinityClassify builds the i-th one-text request to Infinity's
// /classify.
func infinityClassify(url, model string) func(i int) (loadgen.Request, error) {
	return func(i int) (loadgen.Request, error) {
		body, err := json.Marshal(map[string]any{"model": model, "input": []string{shortTexts[i%len(shortTexts)]}})
		return loadgen.Post(url+"/classify", "application/json", body), err
	}
}

// agreementTexts are the bench's texts and a few of other lengths and
// scripts, so the check is not one sentence 200 times.
var agreementTexts = append(append([]string{}, shortTexts...),
	"I hated every minute of it.", "ok", "An absolute masterpiece: beautifully shot, wonderfully acted, and far too short.",
	"Très bien ! Le café était froid 😀 mais le film, magnifique.",
	strings.Repeat("The plot meanders, the pacing drags, yet the final act almost redeems it. ", 12))

// agreement is how Chorus's and Infinity's answers on the same texts
// compare.
type agreement struct {
	texts, sameLabel int
	maxDelta         float64
}

func postJSON(url string, body any, into any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, data)
	}
	return json.Unmarshal(data, into)
}

// chorusProbabilities asks Chorus (OIP V2, through protocol's client) for
// the probabilities of texts.
func chorusProbabilities(url string, texts []string) ([][]float64, error) {
	req, err := protocol.TextRequest("", texts, "probabilities")
	if err != nil {
		return nil, err
	}
	var resp protocol.ClientResponse
	if err := postJSON(url+"/v2/models/m/infer", req, &resp); err != nil {
		return nil, fmt.Errorf("chorus probabilities: %w", err)
	}
	if len(resp.Outputs) != 1 || len(resp.Outputs[0].Shape) != 2 || resp.Outputs[0].Shape[0] != len(texts) {
		return nil, fmt.Errorf("chorus probabilities: unexpected outputs %+v", resp.Outputs)
	}
	var data []float64
	if err := json.Unmarshal(resp.Outputs[0].Data, &data); err != nil {
		return nil, fmt.Errorf("chorus probabilities: %w", err)
	}
	k := resp.Outputs[0].Shape[1]
	if len(data) != len(texts)*k {
		return nil, fmt.Errorf("chorus probabilities: %d values for shape %v", len(data), resp.Outputs[0].Shape)
	}
	out := make([][]float64, len(texts))
	for i := range out {
		out[i] = data[i*k : (i+1)*k]
	}
	return out, nil
}

// infinityScores asks Infinity's /classify for every label's score.
func infinityScores(url string, texts []string) ([]map[string]float64, error) {
	var resp struct {
		Data [][]struct {
			Score float64 `json:"score"`
			Label string  `json:"label"`
		} `json:"data"`
	}
	if err := postJSON(url+"/classify", map[string]any{"model": "m", "input": texts}, &resp); err != nil {
		return nil, fmt.Errorf("infinity classify: %w", err)
	}
	if len(resp.Data) != len(texts) {
		return nil, fmt.Errorf("infinity classify: %d answers for %d texts", len(resp.Data), len(texts))
	}
	out := make([]map[string]float64, len(texts))
	for i, labels := range resp.Data {
		out[i] = map[string]float64{}
		for _, l := range labels {
			out[i][l.Label] = l.Score
		}
	}
	return out, nil
}

// compareAnswers matches Chorus's probabilities (by label index) against
// Infinity's scores (by label name, names[index]).
func compareAnswers(chorus [][]float64, infinity []map[string]float64, names []string) (agreement, error) {
	a := agreement{texts: len(chorus)}
	for i, probs := range chorus {
		if len(probs) != len(names) || len(infinity[i]) != len(names) {
			return a, fmt.Errorf("text %d: %d labels from chorus, %d from infinity, %d in config.json", i, len(probs), len(infinity[i]), len(names))
		}
		best, bestInf := 0, 0
		for j, p := range probs {
			q, ok := infinity[i][names[j]]
			if !ok {
				return a, fmt.Errorf("text %d: infinity has no label %q", i, names[j])
			}
			a.maxDelta = max(a.maxDelta, math.Abs(p-q))
			if p > probs[best] {
				best = j
			}
			if q > infinity[i][names[bestInf]] {
				bestInf = j
			}
		}
		if best == bestInf {
			a.sameLabel++
		}
	}
	return a, nil
}

// labelNames are config.json's id2label in index order, or the names
// transformers gives when it has none (LABEL_0, …).
func labelNames(dir string, k int) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var cfg struct {
		ID2Label map[string]string `json:"id2label"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	names := make([]string, k)
	for i := range names {
		names[i] = cmp.Or(cfg.ID2Label[fmt.Sprint(i)], fmt.Sprintf("LABEL_%d", i))
	}
	return names, nil
}

// infinityLoad warms a server, then measures it at each client count; a
// run with errors is no measurement.
func (b *bench) infinityLoad(what string, request func(i int) (loadgen.Request, error)) ([]loadgen.Result, error) {
	loadgen.Run(b.ctx, 40, 8, request)
	var out []loadgen.Result
	for _, c := range benchClients {
		r := loadgen.Run(b.ctx, b.n(c.n), c.c, request)
		if r.Errors > 0 {
			return nil, fmt.Errorf("infinity section, %s, %d clients: %d errors, first: %s", what, c.c, r.Errors, r.FirstError)
		}
		out = append(out, r)
	}
	return out, nil
}

// runInfinity serves modelDir with one engine, checks its answers against
// Chorus's probabilities ref, and measures it.
func (b *bench) runInfinity(modelDir string, e infinityEngine, ref [][]float64, names []string) ([]loadgen.Result, agreement, error) {
	hfHome, err := os.MkdirTemp("", "chorus-bench-infinity-hf-*")
	if err != nil {
		return nil, agreement{}, err
	}
	defer func() { _ = os.RemoveAll(hfHome) }()
	inf, url, err := b.startInfinity(modelDir, hfHome, e.args)
	if err != nil {
		return nil, agreement{}, err
	}
	defer b.stop(inf)
	scores, err := infinityScores(url, agreementTexts)
	if err != nil {
		return nil, agreement{}, err
	}
	a, err := compareAnswers(ref, scores, names)
	if err == nil && (a.sameLabel != a.texts || a.maxDelta > infinityTolerance) {
		err = fmt.Errorf("labels agree on %d of %d texts, max |Δp| %.2g (tolerance %g)", a.sameLabel, a.texts, a.maxDelta, infinityTolerance)
	}
	if err != nil {
		return nil, a, fmt.Errorf("%s does not answer as Chorus does: %w", e.name, err)
	}
	res, err := b.infinityLoad(e.name, infinityClassify(url, "m"))
	return res, a, err
}

// infinityVersions names what the venv runs Infinity with, asking the venv
// once: the header and the section both name it.
func (b *bench) infinityVersions() string {
	if b.infinityVers == "" {
		b.infinityVers = b.askInfinityVersions()
	}
	return b.infinityVers
}

func (b *bench) askInfinityVersions() string {
	out, err := exec.Command(b.o.infinityPython, "-c", "import importlib.metadata as m; "+
		"print(', '.join(p + ' ' + m.version(p) for p in ('infinity-emb', 'optimum', 'onnxruntime', 'transformers', 'torch')))").Output()
	if err != nil {
		return "infinity-emb (version unknown)"
	}
	return strings.TrimSpace(string(out))
}

// infinity measures Chorus against Infinity, a Python server that batches,
// on the same model and texts at 1, 8 and 64 clients.
func (b *bench) infinity() (string, error) {
	dir := filepath.Join(b.o.models, "full")
	const graph = "onnx/model.onnx"
	ch, url, err := b.startChorus(fmt.Sprintf("models:\n  - name: m\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q, onnx_file: %q}]\n", dir, graph))
	if err != nil {
		return "", err
	}
	ref, err := chorusProbabilities(url, agreementTexts)
	if err != nil {
		b.stop(ch)
		return "", err
	}
	chorus, err := b.infinityLoad("Chorus", v1(url, "m", true))
	b.stop(ch)
	if err != nil {
		return "", err
	}
	names, err := labelNames(dir, len(ref[0]))
	if err != nil {
		return "", err
	}
	modelDir, err := infinityModelDir(dir, graph)
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(modelDir) }()
	peers := make([][]loadgen.Result, len(infinityEngines))
	agreed := make([]agreement, len(infinityEngines))
	for i, e := range infinityEngines {
		if peers[i], agreed[i], err = b.runInfinity(modelDir, e, ref, names); err != nil {
			return "", err
		}
	}
	return b.infinityReport(graph, chorus, peers, agreed), nil
}

// infinityReport writes the section: the sentence saying what ran, one
// table of every server at every load, and the ratios.
func (b *bench) infinityReport(graph string, chorus []loadgen.Result, peers [][]loadgen.Result, agreed []agreement) string {
	var out strings.Builder
	engines := make([]string, len(infinityEngines))
	same := make([]string, len(infinityEngines))
	for i, e := range infinityEngines {
		engines[i] = e.what
		same[i] = fmt.Sprintf("%s: labels agree on %d of %d, max |Δ probability| %.1g", e.name, agreed[i].sameLabel, agreed[i].texts, agreed[i].maxDelta)
	}
	fmt.Fprintf(&out, "\n## A peer that batches: Infinity\n\n"+
		"Full-size random DistilBERT, one-text requests (the bench's 200 short texts), each server alone on the machine. "+
		"**Infinity** (%s; `scripts/bench/infinity/requirements.txt`) runs its own CLI, `infinity_emb v2 --device cpu --batch-size %d`, "+
		"on the same folder and `%s`, with: %s. ONNX Runtime's CPU provider and PyTorch with their default threads (one per physical core); "+
		"requests to `/classify`. Infinity batches requests in its queue, but its optimum classifier (`transformer/classifier/optimum.py`) "+
		"hands a batch to transformers' text-classification pipeline without a batch size, so ONNX Runtime runs the texts one at a time; "+
		"its torch classifier runs a batch in one padded forward pass. **Chorus**: V1 `:predict`, cache off, default continuous batching (at most %d texts a run). "+
		"Same answers, checked before each Infinity run on %d texts (the 200 and 5 of other lengths and scripts; the run stops above |Δ| %g): %s.\n\n",
		b.infinityVersions(), infinityBatchSize, graph, strings.Join(engines, "; "), infinityBatchSize, len(agreementTexts), infinityTolerance, strings.Join(same, "; "))
	out.WriteString("| server | clients | requests | errors | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|\n")
	all := append([][]loadgen.Result{chorus}, peers...)
	for i, rs := range all {
		name := "Chorus (ONNX Runtime, continuous batching)"
		if i > 0 {
			name = infinityEngines[i-1].name
		}
		for j, r := range rs {
			fmt.Fprintf(&out, "| %s | %d | %d | %d | %.0f | %.2f | %.2f |\n", name, benchClients[j].c, r.Requests, r.Errors, r.RPS, ms(r.P50), ms(r.P99))
		}
	}
	out.WriteString("\nChorus / Infinity (throughput above 1 and latency below 1: Chorus ahead):\n\n" +
		"| against | clients | req/s | p50 | p99 |\n|---|---|---|---|---|\n")
	for i, rs := range peers {
		for j, r := range rs {
			fmt.Fprintf(&out, "| %s | %d | %.2f× | %.2f× | %.2f× |\n", infinityEngines[i].name, benchClients[j].c,
				chorus[j].RPS/r.RPS, ms(chorus[j].P50)/ms(r.P50), ms(chorus[j].P99)/ms(r.P99))
		}
	}
	last := len(benchClients) - 1
	ratios := make([]string, len(peers))
	for i, rs := range peers {
		ratios[i] = fmt.Sprintf("%.2f× against %s", chorus[last].RPS/rs[last].RPS, infinityEngines[i].name)
	}
	fmt.Fprintf(&out, "\n**Chorus's throughput at %d clients: %s** (goal: ahead of Infinity, above 1×).\n",
		benchClients[last].c, strings.Join(ratios, "; "))
	return out.String()
}
