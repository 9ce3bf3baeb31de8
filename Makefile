# Chorus: `make run` serves configs/local.yaml, `make test` runs every test.
# Everything slow is cached under $(CHORUS_CACHE) by `make deps`.

SHELL := bash
.DEFAULT_GOAL := help

CHORUS_CACHE ?= $(HOME)/.cache/chorus
export CHORUS_CACHE
# -chorus1: built with scripts/tokenizers/chorus.patch (see scripts/deps.sh).
TOKENIZERS_DIR := $(CHORUS_CACHE)/tokenizers-v1.22.1-chorus1
# cgo finds libtokenizers.a here; the binary finds ONNX Runtime through
# CHORUS_ORT_LIB (or its --ort-lib flag).
export CGO_LDFLAGS := -L$(TOKENIZERS_DIR)
export CHORUS_ORT_LIB ?= $(CHORUS_CACHE)/onnxruntime-1.29.0/libonnxruntime.so.1

HTTP_PORT ?= 8080
CONFIG ?= configs/local.yaml
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
PY_VENV := $(CHORUS_CACHE)/venv-kserve-client
FIXTURES_VENV := $(CHORUS_CACHE)/venv-fixtures
ONNX_VENV := $(CHORUS_CACHE)/venv-onnx-tools

.PHONY: help deps pyvenv build run stack stack-down test test-go test-deploy fuzz faults vulncheck test-gpu test-python bench bench-cache fixtures demo-model venv-onnx demo-int8 lint proto

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

deps: ## install ONNX Runtime, libtokenizers and redis-server (cached)
	@echo "==> deps: checking the cache in $(CHORUS_CACHE)"
	@bash scripts/deps.sh

build: deps ## build bin/chorus
	@echo "==> build: bin/chorus"
	@go build -o bin/chorus ./cmd/chorus

run: build ## serve configs/local.yaml on HTTP_PORT (default 8080)
	@echo "==> run: chorus serve --config $(CONFIG) --http_port $(HTTP_PORT)"
	@./bin/chorus serve --config $(CONFIG) --http_port $(HTTP_PORT)

stack: build ## the docker-compose topology as processes: Redis, 2 predictors, gateway on HTTP_PORT
	@echo "==> stack: scripts/stack.sh up"
	@HTTP_PORT=$(HTTP_PORT) bash scripts/stack.sh up

stack-down: ## stop what make stack started
	@bash scripts/stack.sh down

test: deps pyvenv test-go test-deploy test-python ## run every test (Go with -race, e2e, deploy manifests, the kserve SDK client)

pyvenv: ## the Python venv of the kserve SDK tests (cached)
	@bash scripts/pyclient/venv.sh $(PY_VENV)

# CHORUS_KSERVE_PYTHON lets Go tests start KServe's Python ModelServer.
# CHORUS_CHROMIUM is the browser of the /docs test: scripts/browser/chromium.sh
# installs Debian's chromium when missing and prints its path (nothing when it
# cannot be installed here; only then does that test skip). Screenshots go to
# CHORUS_ARTIFACTS (default artifacts/).
test-go:
	@echo "==> test: chromium for the /docs browser test"
	@chromium=$$(bash scripts/browser/chromium.sh); \
	echo "==> test: go test $(GO_TEST_FLAGS) ./..."; \
	CHORUS_CHROMIUM=$$chromium CHORUS_KSERVE_PYTHON=$(PY_VENV)/bin/python go test $(GO_TEST_FLAGS) ./...

# deploy/ is a module of its own (Kubernetes, KServe and compose-spec types).
test-deploy:
	@echo "==> test: deploy/ manifests and compose file, strictly decoded"
	@cd deploy && go test -count=1 ./...

faults: deps ## fault-injection suite (real processes, bounded loads) → RELIABILITY.md
	@echo "==> faults: go test ./e2e/faults → RELIABILITY.md"
	@CHORUS_RELIABILITY_OUT=$(CURDIR)/RELIABILITY.md go test -count=1 -v ./e2e/faults 2>&1 | grep -E '^(---|ok|FAIL|PASS)'

vulncheck: ## govulncheck (needs vuln.go.dev, which our build machines cannot reach)
	@echo "==> vulncheck: govulncheck ./..."
	@go run golang.org/x/vuln/cmd/govulncheck@v1.1.4 ./...

FUZZTIME ?= 10s
fuzz: deps ## run every fuzz target for FUZZTIME each (CI: a few seconds)
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

test-gpu: deps ## on a GPU host: the backend contract suite on cuda:0 (docs/GPU.md)
	@echo "==> test-gpu: CUDA providers beside the core, then the contract suite on cuda:0"
	@bash scripts/gpu/fetch_provider.sh
	@CHORUS_TEST_DEVICE=$${CHORUS_TEST_DEVICE:-cuda:0} go test -count=1 -run 'OnDevice' -v ./backends/onnx

test-python: build
	@echo "==> test: kserve SDK client against bin/chorus ($(PY_VENV))"
	@bash scripts/pyclient/run.sh $(PY_VENV)

BENCH_VENV := $(CHORUS_CACHE)/venv-bench
BENCH_MODELS := $(CHORUS_CACHE)/bench-models
BENCH_SECTIONS ?= cache,transports,model,batching,limit,infinity,memory

bench: build ## BENCHMARKS.md: Chorus vs KServe's Python servers, batching, memory; Go benchmarks
	@echo "==> bench: venv $(BENCH_VENV) (kserve, torch, transformers; large, once)"
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r scripts/bench/requirements.txt
	@echo "==> bench: models in $(BENCH_MODELS) (tiny and full-size random DistilBERT)"
	@$(BENCH_VENV)/bin/python scripts/bench/make_models.py --tokenizer $(TOKENIZERS_DIR)/bert-base-uncased.json --out $(BENCH_MODELS)
	@echo "==> bench: the full-size model's int8 graph (scripts/onnx_tools/variants.py; random weights: no agreement bound)"
	@$(MAKE) --no-print-directory venv-onnx
	@test -f $(BENCH_MODELS)/full/onnx/model_quantized.onnx || $(ONNX_VENV)/bin/python scripts/onnx_tools/variants.py --model $(BENCH_MODELS)/full --min-agreement 0
	@echo "==> bench: the Infinity peer's venv $(CHORUS_CACHE)/venv-infinity (infinity-emb, optimum, torch; ~6 GB, once)"
	@bash scripts/bench/infinity/venv.sh $(CHORUS_CACHE)/venv-infinity
	@echo "==> bench: cmd/chorus-bench → BENCHMARKS.md (BENCH_SECTIONS=$(BENCH_SECTIONS))"
	@go run ./cmd/chorus-bench --chorus bin/chorus --python $(BENCH_VENV)/bin/python --onnx-python $(ONNX_VENV)/bin/python \
		--infinity-python $(CHORUS_CACHE)/venv-infinity/bin/python \
		--models $(BENCH_MODELS) --sections $(BENCH_SECTIONS) --out BENCHMARKS.md
	@echo "==> bench: Go benchmarks (gateway overhead, cache)"
	@go test -run '^$$' -bench . -benchtime 2000x ./e2e ./gateway

bench-cache: deps ## cache-hit vs model path under the same load, with a real Redis
	@echo "==> bench-cache: go test -bench CacheHitVsModel ./e2e"
	@go test -run '^$$' -bench CacheHitVsModel -benchtime 4000x ./e2e

fixtures: deps ## regenerate testdata/ (test models, references, Python float table)
	@echo "==> fixtures: venv $(FIXTURES_VENV) from scripts/fixtures/requirements.txt"
	@test -x $(FIXTURES_VENV)/bin/python || python3 -m venv $(FIXTURES_VENV)
	@$(FIXTURES_VENV)/bin/pip install -q -r scripts/fixtures/requirements.txt
	@echo "==> fixtures: testdata/models"
	@$(FIXTURES_VENV)/bin/python scripts/fixtures/make_fixtures.py \
		--tokenizer $(TOKENIZERS_DIR)/bert-base-uncased.json --out testdata/models
	@echo "==> fixtures: testdata/pyrepr.json"
	@python3 scripts/fixtures/make_pyrepr_table.py testdata/pyrepr.json

demo-model: deps ## retrain models/demo-sentiment and its data splits (CPU, ~1 minute)
	@echo "==> demo-model: venv $(FIXTURES_VENV) from scripts/fixtures/requirements.txt"
	@test -x $(FIXTURES_VENV)/bin/python || python3 -m venv $(FIXTURES_VENV)
	@$(FIXTURES_VENV)/bin/pip install -q -r scripts/fixtures/requirements.txt
	@echo "==> demo-model: training models/demo-sentiment"
	@$(FIXTURES_VENV)/bin/python scripts/demo_model/train.py \
		--tokenizer $(TOKENIZERS_DIR)/bert-base-uncased.json --out models/demo-sentiment --data data/demo-sentiment
	@$(MAKE) --no-print-directory demo-int8

venv-onnx: ## the Python venv of scripts/onnx_tools: ONNX Runtime's optimizer and int8 quantisation (cached)
	@test -x $(ONNX_VENV)/bin/python || python3 -m venv $(ONNX_VENV)
	@$(ONNX_VENV)/bin/pip install -q --disable-pip-version-check -r scripts/onnx_tools/requirements.txt

demo-int8: venv-onnx build ## the demo model's int8 graph, its accuracy vs fp32 (onnx/variants.json) and its own temperature
	@echo "==> demo-int8: models/demo-sentiment/onnx/model_quantized.onnx (label agreement ≥ 99.5% on the test split)"
	@$(ONNX_VENV)/bin/python scripts/onnx_tools/variants.py --model models/demo-sentiment --data data/demo-sentiment/test.jsonl
	@echo "==> demo-int8: configs/calibration/distilbert-int8.json (its fingerprint is not fp32's)"
	@./bin/chorus calibrate --config configs/local.yaml --model distilbert-int8 --data data/demo-sentiment/validation.jsonl \
		--test data/demo-sentiment/test.jsonl --out configs/calibration/distilbert-int8.json --plot $(CHORUS_CACHE)/distilbert-int8-reliability.png

proto: ## regenerate protocol/oippb from oip.proto (needs protoc; the Go plugins are pinned)
	@echo "==> proto: scripts/protogen.sh"
	@bash scripts/protogen.sh

GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(CHORUS_CACHE)/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	@echo "==> lint: installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(CHORUS_CACHE)/bin (once)"
	@mkdir -p $(CHORUS_CACHE)/bin
	@GOBIN=$(CHORUS_CACHE)/bin/.tmp go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@mv $(CHORUS_CACHE)/bin/.tmp/golangci-lint $@

lint: $(GOLANGCI_LINT) ## gofmt, go vet, golangci-lint (errorlint, bodyclose, sloglint, promlinter; .golangci.yml)
	@echo "==> lint: gofmt"
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	@echo "==> lint: go vet"
	@go vet ./...
	@echo "==> lint: golangci-lint $(GOLANGCI_LINT_VERSION)"
	@$(GOLANGCI_LINT) run ./...
	@echo "==> lint: deploy/go.mod in step with go.mod (cd deploy && go mod tidy)"
	@cd deploy && go mod tidy -diff >/dev/null || { echo "deploy/go.mod is stale: run cd deploy && go mod tidy"; exit 1; }
