# Two entry points on a fresh machine (see README):
#   make demo   - the main job end to end on embedded defaults (no servers)
#   make test   - install everything and run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install browser demo test test-unit services-up services-down benchmarks benchmarks-extractors models images compose-test clean

$(BIN)/mkg: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/mkg

install: $(BIN)/mkg

demo: install
	$(BIN)/mkg demo

# The console's browser tests drive Debian's chromium with its chromedriver (no driver download);
# installed here when missing and apt-get can (root), else those tests skip and say why; in CI
# (CI=true, set by .ci/run) a failed install stops the run.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) || \
	  { echo "make: chromium/chromium-driver could not be installed; the console's browser tests will be skipped"; \
	    case "$$CI" in 1|true|yes) echo "make: CI=$$CI: failing instead"; exit 1;; esac; }

# The suite starts real Kafka and Neo4j itself (mkg services) and stops them after.
test: install browser
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

services-up: install
	$(BIN)/mkg services up

services-down: install
	$(BIN)/mkg services down

benchmarks: install
	$(BIN)/python -m benchmarks.graph_write
	$(BIN)/python -m benchmarks.kafka_worker

# needs trained models in var/models (see BENCHMARKS.md for the train commands)
benchmarks-extractors: install
	$(BIN)/python -m benchmarks.extractor_quality
	$(BIN)/python -m benchmarks.extractor_speed

# Rebuild the extractor versions shipped in the package (extractors/shipped/) from the research
# data in ../shared/data (sources: ../shared/data/README.md): LoRA, seed 42, selection on val;
# then measure them (benchmarks/results/shipped_models.json, checked by the test suite).
# About 1 h on 2 CPU cores.
DATA ?= ../shared/data
models: install
	$(BIN)/python -m extractors.ship --data $(DATA)
	$(BIN)/python -m benchmarks.shipped_models --speed
	du -sh extractors/shipped

# The production stack (docker-compose.yml). `images` builds its five images locally
# (debootstrap base, Maven Central jars, PyPI); `compose-test` builds them, starts the stack
# for real, checks posts -> Neo4j, a DAG run in Airflow and the volumes, tears it down and
# records benchmarks/results/compose.json. Needs root; installs Debian's docker.io,
# docker-compose and debootstrap when missing. About 7 min from nothing, 3 min cached.
images: install
	bash deploy/install-engine.sh
	$(BIN)/python -m deploy.images

compose-test: install
	bash deploy/install-engine.sh
	$(BIN)/python -m deploy.compose_test

clean:
	rm -rf var build *.egg-info
