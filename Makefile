# Every target a fresh machine needs: the virtualenv, the real components from Debian, the simulator.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COMPONENTS := .cache/components/.complete
SIM_LIB := build/libi2csim.so

.PHONY: all venv components sim run demo test lint bench clean dashboards

all: venv components sim

$(BIN)/edge-metrics: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/edge-metrics

$(COMPONENTS): tools/fetch-components.sh deploy/components.versions
	bash tools/fetch-components.sh

components: $(COMPONENTS)

$(SIM_LIB): $(wildcard sim/*.c sim/*.h)
	@mkdir -p build
	$(CC) -shared -fPIC -O2 -Wall -Wextra -o $@ $(filter %.c,$^) -ldl -lpthread

sim: $(SIM_LIB)

# Run the product on its bundled default: the seed's example node with simulated sensors.
run: venv components sim
	$(BIN)/edge-metrics simulate --model scripts/models/space_server.yaml -- \
	  $(BIN)/edge-metrics run --node-name bupt-a --output .run/textfile/custom_metrics.prom

demo: venv components sim
	bash tools/demo.sh

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/ruff check deploy/grafana deploy/operators
	cd deploy/grafana && ../../$(BIN)/mypy --strict generate.py
	$(BIN)/mypy --strict deploy/operators/generate.py

test: venv components sim lint
	$(BIN)/pytest

# Regenerate the Grafana dashboards (deploy/grafana/dashboards/*.json, from deploy/grafana/*.py and
# deploy/mixin/config.yaml) and the operator objects (deploy/kubernetes/components/{prometheus,vm}-operator,
# from deploy/prometheus and the edge DaemonSet); the tests fail while the committed files differ.
dashboards: venv
	$(BIN)/python deploy/grafana/generate.py
	$(BIN)/python deploy/operators/generate.py

bench: venv components
	$(BIN)/python bench/collector_bench.py

clean:
	rm -rf $(VENV) build .run
