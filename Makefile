# Every target a fresh machine needs: the virtualenv, the real components from Debian, the simulator.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COMPONENTS := .cache/components/.complete
SIM_LIB := build/libi2csim.so

.PHONY: all venv components sim run demo test lint bench fleet clean

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

test: venv components sim lint
	$(BIN)/pytest

bench: venv components
	$(BIN)/python bench/collector_bench.py

# N simulated edge nodes in network namespaces (needs root and `ip netns`) through partitions, a centre
# restart and a fleet-wide reconnect; prints the table of docs/scale.md. `make fleet N=10 STORE=victoriametrics`.
N ?= 5
STORE ?= prometheus
FLEET_PATH ?= textfile
fleet: venv components sim
	nice $(BIN)/python -m bench.fleet --nodes $(N) --store $(STORE) --path $(FLEET_PATH) $(FLEET_ARGS)

clean:
	rm -rf $(VENV) build .run
