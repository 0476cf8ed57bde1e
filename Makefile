# mesibo-iot — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BUILD := $(abspath build)
export PATH := /usr/local/go/bin:$(PATH):/usr/sbin
export MESIBO_IOT_BUILD := $(BUILD)
GOFILES := $(shell find . -name '*.go' -not -path './build/*' 2>/dev/null)
CSRC := $(wildcard cabi/*.c cabi/*.h cabi/host/*.c cabi/host/*.h cabi/filter/*.c)
TEST_TIMEOUT ?= 20m
FUZZTIME ?= 5m
SOAK ?= 5m

.PHONY: help prereq module host test lint gotest demo chat bench bench-short bench-trace fuzz soak sanitize clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

prereq: ## install missing Debian packages (as root) or print the command
	@bash .ci/prereq

$(BUILD)/mesibo_mod_iot.so: $(GOFILES) $(CSRC) go.mod go.sum
	@mkdir -p $(BUILD)
	$(GO) build -buildmode=c-shared -trimpath -o $@ ./cabi
	@rm -f $(BUILD)/mesibo_mod_iot.h

$(BUILD)/fault/mesibo_mod_iot.so: $(GOFILES) $(CSRC) go.mod go.sum
	@mkdir -p $(BUILD)/fault
	$(GO) build -tags faultinject -buildmode=c-shared -trimpath -o $@ ./cabi
	@rm -f $(BUILD)/fault/mesibo_mod_iot.h

module: prereq $(BUILD)/mesibo_mod_iot.so ## build build/mesibo_mod_iot.so

host: prereq ## build build/mesibo-host and build/mesibo_mod_filter.so
	@$(MAKE) --no-print-directory -C cabi/host OUT=$(BUILD)

lint: ## gofmt, go vet, and the cgo-free build of everything outside cabi/
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build $$($(GO) list -f '{{if .GoFiles}}{{.ImportPath}}{{end}}' ./... | grep -v '/cabi$$')

gotest: module host $(BUILD)/fault/mesibo_mod_iot.so
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test: prereq lint gotest ## run every test (race detector on), as CI does
	@bash cabi/host/test.sh

demo: module host ## run the scripted demo on embedded defaults
	$(GO) run ./firmware-sim/cmd/demo

chat: module host ## the demo's setup, interactively
	$(GO) run ./firmware-sim/cmd/demo --interactive

bench: module host ## every benchmark with its baseline, in one run; writes docs/benchmarks.md and docs/bench/
	$(GO) run ./firmware-sim/cmd/benchrun -doc docs/benchmarks.md

bench-short: module host ## the quick version (under 2 minutes); writes build/bench-short.md
	$(GO) run ./firmware-sim/cmd/benchrun -short -doc $(BUILD)/bench-short.md

bench-trace: module host ## the MQTT round trip with the per-step trace on; writes docs/bench/mqtt-trace.md
	rm -rf $(BUILD)/trace && mkdir -p $(BUILD)/trace
	MESIBO_IOT_TRACE=$(BUILD)/trace $(GO) run ./firmware-sim/cmd/benchrun -only mqtt -doc docs/bench/mqtt-trace.md -plots $(BUILD)/trace

soak: module host ## load with faults for SOAK (default 5m) and the audit; figures in the test output
	MESIBO_IOT_SOAK=$(SOAK) $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 60m -v ./cabi/itest/

sanitize: module host ## the C side under AddressSanitizer/UBSan and valgrind
	@bash .ci/prereq --with-sanitize
	bash .ci/sanitize

fuzz: ## run every fuzz target (Go and the C mesibo.conf parser) for FUZZTIME (default 5m) each
	@bash .ci/prereq --with-fuzz
	bash cabi/host/fuzz/run.sh $(FUZZTIME)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

clean: ## remove build outputs
	rm -rf $(BUILD)
