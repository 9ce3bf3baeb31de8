// Command chorus-bench measures Chorus against the Python servers users
// would pick instead, side by side in one run on this machine, and writes
// BENCHMARKS.md. Every figure is a ratio of two runs with the same load
// generator, request count and concurrency. Run it with `make bench`.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chorusml/chorus/internal/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chorus-bench:", err)
		os.Exit(1)
	}
}

// allSections are the report's sections, in order.
const allSections = "cache,transports,model,batching,limit,infinity,memory"

type options struct {
	chorus, python, onnxPython, infinityPython, models, out, sections string
	quick                                                             bool
}

func run() error {
	var o options
	flag.StringVar(&o.chorus, "chorus", "bin/chorus", "the chorus binary")
	flag.StringVar(&o.python, "python", "", "python with scripts/bench/requirements.txt (kserve, torch, transformers)")
	flag.StringVar(&o.onnxPython, "onnx-python", "", "python with scripts/onnx_tools/requirements.txt (onnxruntime), for the model-only limit")
	flag.StringVar(&o.infinityPython, "infinity-python", "", "python of scripts/bench/infinity/venv.sh (infinity-emb), for the infinity section")
	flag.StringVar(&o.models, "models", "", "folder with tiny/ and full/ from scripts/bench/make_models.py (full/ with onnx/model_quantized.onnx)")
	flag.StringVar(&o.sections, "sections", allSections, "sections to run, in order (a reduced run says so in the report)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "report to write")
	flag.BoolVar(&o.quick, "quick", false, "fewer requests (a smoke run, not for reporting)")
	only := flag.String("only", "", "run one section (as --sections with one name): transports (needs only --models/tiny), cache, model, batching, limit, memory")
	flag.Parse()
	if *only != "" {
		o.sections = *only
	}
	b := &bench{o: o, ctx: context.Background()}
	defer b.stopAll()
	all := map[string]func() (string, error){"cache": b.cacheHit, "transports": b.transports, "model": b.modelPath,
		"batching": b.batching, "limit": b.limit, "infinity": b.infinity, "memory": b.memory}
	var sections []func() (string, error)
	for _, name := range strings.Split(o.sections, ",") {
		s, ok := all[name]
		if !ok {
			return fmt.Errorf("--sections: no section %q (%s)", name, allSections)
		}
		if (name == "cache" || name == "model") && o.python == "" {
			return fmt.Errorf("section %s needs --python (make bench sets it)", name)
		}
		if name == "limit" && o.onnxPython == "" {
			return errors.New("section limit needs --onnx-python (make bench sets it)")
		}
		if name == "infinity" && o.infinityPython == "" {
			return errors.New("section infinity needs --infinity-python (make bench sets it)")
		}
		sections = append(sections, s)
	}
	if o.models == "" {
		return errors.New("--models is required (make bench sets it)")
	}
	var body strings.Builder
	for _, s := range sections {
		text, err := s()
		if err != nil {
			return err
		}
		body.WriteString(text)
		fmt.Fprint(os.Stderr, text)
	}
	return os.WriteFile(o.out, []byte(b.header()+body.String()+gpuSection), 0o644)
}

type bench struct {
	o     options
	ctx   context.Context
	procs []*exec.Cmd
	// grpcPort is the last {grpc_port} given to start.
	grpcPort int
	// infinityVers is what infinityVersions found, once asked.
	infinityVers string
}

func (b *bench) n(full int) int {
	if b.o.quick {
		return max(50, full/10)
	}
	return full
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a server and waits until readyPath answers 200.
func (b *bench) start(readyPath string, name string, args ...string) (*exec.Cmd, string, error) {
	port := freePort()
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{port}", strconv.Itoa(port))
		if strings.Contains(a, "{grpc_port}") {
			b.grpcPort = freePort()
			args[i] = strings.ReplaceAll(a, "{grpc_port}", strconv.Itoa(b.grpcPort))
		}
	}
	cmd := exec.Command(name, args...)
	logf, _ := os.CreateTemp("", "chorus-bench-*.log")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	b.procs = append(b.procs, cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get(url + readyPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, url, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("%s not ready; log in %s", name, logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bench) stop(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func (b *bench) stopAll() {
	for _, c := range b.procs {
		if c.ProcessState == nil {
			b.stop(c)
		}
	}
}

func (b *bench) chorusConfig(yaml string) (string, error) {
	f, err := os.CreateTemp("", "chorus-bench-*.yaml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(yaml)
	return f.Name(), err
}

func (b *bench) startChorus(yaml string) (*exec.Cmd, string, error) {
	cfg, err := b.chorusConfig(yaml)
	if err != nil {
		return nil, "", err
	}
	return b.start("/v2/health/ready", b.o.chorus, "serve", "--config", cfg, "--http_port", "{port}", "--grpc_port", "0", "--log-level", "warn")
}

func (b *bench) startKServe(script string, args ...string) (*exec.Cmd, string, error) {
	all := append([]string{script, "--model_name", "m", "--http_port", "{port}"}, args...)
	return b.start("/v2/models/m/ready", b.o.python, all...)
}

var shortTexts = func() []string {
	var out []string
	for i := range 200 {
		out = append(out, fmt.Sprintf("review %d: the film was surprisingly good", i))
	}
	return out
}()

// v1 builds the i-th one-text V1 request to model; the bodies are made
// once, so that the load generator spends nothing on them.
func v1(url, model string, noCache bool) func(i int) (loadgen.Request, error) {
	bodies := make([][]byte, len(shortTexts))
	for i, t := range shortTexts {
		bodies[i] = []byte(`{"instances": ["` + t + `"]}`)
	}
	return func(i int) (loadgen.Request, error) {
		req := loadgen.Post(url+"/v1/models/"+model+":predict", "application/json", bodies[i%len(bodies)])
		if noCache {
			req.Header.Set("Cache-Control", "no-cache")
		}
		return req, nil
	}
}

func row(name string, r loadgen.Result) string {
	return fmt.Sprintf("| %s | %d | %d | %.0f | %.2f | %.2f |\n", name, r.Requests, r.Errors, r.RPS,
		float64(r.P50.Microseconds())/1000, float64(r.P99.Microseconds())/1000)
}

const tableHead = "| server | requests | errors | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n"

func (b *bench) cacheHit() (string, error) {
	const clients, rounds = 8, 5
	n := b.n(30000) // long enough that warm-up and GC cycles average out
	ch, url, err := b.startChorus(fmt.Sprintf("models:\n  - name: m\n    replicas: [{type: onnx, model_dir: %q}]\n", filepath.Join(b.o.models, "tiny")))
	if err != nil {
		return "", err
	}
	defer b.stop(ch)
	ks, kurl, err := b.startKServe("scripts/bench/kserve_trivial.py")
	if err != nil {
		return "", err
	}
	defer b.stop(ks)
	loadgen.Run(b.ctx, len(shortTexts), clients, v1(url, "m", false)) // warm the cache
	loadgen.Run(b.ctx, 200, clients, v1(kurl, "m", false))
	// The servers take turns, so that whatever else the machine does falls
	// on both alike; the one not measured waits on its socket.
	var chorus, kserve []loadgen.Result
	for range rounds {
		chorus = append(chorus, loadgen.Run(b.ctx, n, clients, v1(url, "m", false)))
		kserve = append(kserve, loadgen.Run(b.ctx, n, clients, v1(kurl, "m", false)))
	}
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = chorus[i].RPS / kserve[i].RPS
	}
	slices.Sort(ratios)
	cb, kb := best(chorus), best(kserve)
	return fmt.Sprintf("\n## Cache-hit path vs KServe's Python ModelServer\n\n"+
		"Chorus answering one-text V1 requests from its (warm) logits cache, against KServe's `ModelServer` "+
		"answering the same requests from a trivial in-memory model (`scripts/bench/kserve_trivial.py`). "+
		"%d clients, %d requests a run; %d rounds, the two servers in turn; each server's best run "+
		"(other work on the machine only ever slows a run).\n\n%s%s%s\n"+
		"**Throughput ratio: %.1f×** (best against best; the rounds' own ratios range %.1f–%.1f×, median %.1f×); "+
		"Chorus p99 %.2f ms (goal: ≥ 10× at p99 ≤ 5 ms).\n",
		clients, n, rounds, tableHead, row("Chorus, cache hit", cb), row("KServe ModelServer, trivial model", kb),
		cb.RPS/kb.RPS, ratios[0], ratios[rounds-1], ratios[rounds/2], float64(cb.P99.Microseconds())/1000), nil
}

func (b *bench) modelPath() (string, error) {
	var out strings.Builder
	out.WriteString("\n## Model path on CPU vs KServe with transformers + PyTorch\n\n" +
		"The same random-weight DistilBERT, as ONNX for Chorus (ONNX Runtime, cache off, dynamic batching on) " +
		"and as PyTorch weights for KServe's `ModelServer` running it the way KServe's Hugging Face runtime does " +
		"(`scripts/bench/kserve_hf.py`: AutoTokenizer + AutoModelForSequenceClassification, fp32, 2 threads). " +
		"One-text V1 requests.\n")
	for _, m := range []struct {
		dir, what  string
		n, clients int
	}{{"tiny", "tiny fixture (dim 16, 2 layers)", 2000, 16}, {"full", "full-size DistilBERT (66M parameters)", 300, 16}} {
		n := b.n(m.n)
		ch, url, err := b.startChorus(fmt.Sprintf("models:\n  - name: m\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q, batching: {max_batch_size: 32, max_queue_delay: 2ms}}]\n",
			filepath.Join(b.o.models, m.dir)))
		if err != nil {
			return "", err
		}
		loadgen.Run(b.ctx, 20, 4, v1(url, "m", true))
		chorus := loadgen.Run(b.ctx, n, m.clients, v1(url, "m", true))
		b.stop(ch)
		ks, kurl, err := b.startKServe("scripts/bench/kserve_hf.py", "--model_dir", filepath.Join(b.o.models, m.dir))
		if err != nil {
			return "", err
		}
		loadgen.Run(b.ctx, 20, 4, v1(kurl, "m", false))
		kserve := loadgen.Run(b.ctx, n, m.clients, v1(kurl, "m", false))
		b.stop(ks)
		fmt.Fprintf(&out, "\n### %s, %d clients, %d requests each\n\n%s%s%s\n**Throughput ratio: %.1f×** (goal: ≥ 4×).\n",
			m.what, m.clients, n, tableHead, row("Chorus (ONNX Runtime, fp32)", chorus), row("KServe + PyTorch (fp32)", kserve), chorus.RPS/kserve.RPS)
	}
	return out.String(), nil
}

func (b *bench) batching() (string, error) {
	const clients = 64
	n := b.n(640)
	dir := filepath.Join(b.o.models, "full")
	res := map[bool]loadgen.Result{}
	for _, on := range []bool{false, true} {
		batching := ", batching: {enabled: false}" // continuous batching is the default
		if on {
			batching = ", batching: {max_batch_size: 64, max_queue_delay: 5ms}"
		}
		ch, url, err := b.startChorus(fmt.Sprintf("models:\n  - name: m\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q%s}]\n", dir, batching))
		if err != nil {
			return "", err
		}
		loadgen.Run(b.ctx, 20, 4, v1(url, "m", true))
		res[on] = loadgen.Run(b.ctx, n, clients, v1(url, "m", true))
		b.stop(ch)
	}
	return fmt.Sprintf("\n## Dynamic batching on vs off\n\nFull-size DistilBERT, %d clients of short one-text requests, %d requests each.\n\n%s%s%s\n"+
		"**Throughput ratio (on / off): %.2f×**, p99 %.0f ms vs %.0f ms.\n", clients, n, tableHead,
		row("batching off", res[false]), row("batching on (max 64, 5 ms)", res[true]), res[true].RPS/res[false].RPS,
		float64(res[true].P99.Milliseconds()), float64(res[false].P99.Milliseconds())), nil
}

// rss reads a process's resident and peak resident memory in MiB.
func rss(pid int) (cur, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 {
			kb, _ := strconv.ParseFloat(fields[1], 64)
			switch fields[0] {
			case "VmRSS:":
				cur = kb / 1024
			case "VmHWM:":
				peak = kb / 1024
			}
		}
	}
	return cur, peak
}

func (b *bench) memory() (string, error) {
	var out strings.Builder
	out.WriteString("\n## Memory\n\nResident memory of one Chorus process serving one model (cache off), " +
		"after loading and at the peak of 64 clients × 320 requests.\n\n| model | RSS loaded, MiB | peak RSS under load, MiB |\n|---|---|---|\n")
	for _, m := range []string{"tiny", "full"} {
		ch, url, err := b.startChorus(fmt.Sprintf("models:\n  - name: m\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q, batching: {max_batch_size: 32}}]\n", filepath.Join(b.o.models, m)))
		if err != nil {
			return "", err
		}
		loaded, _ := rss(ch.Process.Pid)
		loadgen.Run(b.ctx, b.n(320), 64, v1(url, "m", true))
		_, peak := rss(ch.Process.Pid)
		fmt.Fprintf(&out, "| %s | %.0f | %.0f |\n", m, loaded, peak)
		b.stop(ch)
	}
	return out.String(), nil
}

func (b *bench) header() string {
	cpu := "unknown"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	version := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	pyv := version(b.o.python, "-c", "import torch, transformers, kserve, importlib.metadata as m; print(f'torch {torch.__version__}, transformers {transformers.__version__}, kserve {m.version(\"kserve\")}')")
	pyv = version(b.o.python, "--version") + "; " + pyv
	if b.o.python == "" {
		pyv = "KServe peers not run"
	}
	if b.o.onnxPython != "" {
		pyv += "; model-only limit: onnxruntime " + version(b.o.onnxPython, "-c", "import onnxruntime; print(onnxruntime.__version__)")
	}
	if b.o.infinityPython != "" {
		pyv += "; Infinity: " + b.infinityVersions()
	}
	mode := ""
	if b.o.quick {
		mode = "\n> **Quick run** (`--quick`): a tenth of the requests; a smoke test, not figures to quote.\n"
	}
	if b.o.sections != allSections {
		mode += "\n> **Reduced run** (`--sections " + b.o.sections + "`): only these sections were measured.\n"
	}
	return fmt.Sprintf(`# Benchmarks

Generated by `+"`make bench`"+` (cmd/chorus-bench) on %s. Every comparison is two runs of the
same load generator (internal/loadgen: fixed request count, fixed concurrency, keep-alive
HTTP/1.1 on loopback through fasthttp's client, request bodies built beforehand) in one session
on one machine; the load generator shares the machine.
%s
- Machine: %s, %d cores, %s
- Chorus: %s, ONNX Runtime 1.29.0 (CPU), Go %s
- Peers: %s
`, time.Now().UTC().Format("2006-01-02"), mode, cpu, runtime.NumCPU(), memTotal(), version(b.o.chorus, "--version"),
		strings.TrimPrefix(runtime.Version(), "go"), pyv)
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	kb, _ := strconv.ParseFloat(f[1], 64)
	return fmt.Sprintf("%.0f GiB memory", kb/1024/1024)
}

const gpuSection = `
## GPU

Not measured in this run: no GPU was available. scripts/gpu/ holds what a GPU host runs
(see docs/GPU.md): ` + "`make test-gpu`" + ` (the backend contract suite on CUDA) and
` + "`scripts/gpu/bench.sh`" + ` (full-size DistilBERT on CUDA, fp32 and fp16, seq 128 / batch 128,
seq 16 / batch 512 and batch-1 latency, side by side with PyTorch eager fp16).
`
