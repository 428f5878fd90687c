# deeplab_ros — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
# Every test run gets localhost-only discovery; the domain id is chosen per run in conftest.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
PYTEST_ARGS ?=
# The edit-run loop: the unit and lint layers, without the few tests there that open a DDS
# participant (markers in setup.cfg, layers in test/conftest.py). Not a replacement for
# `make test`.
FAST_TESTS := test/unit test/lint -m 'not ros and not slow'

.PHONY: setup test test-fast demo bench eval docs gpu-check-bundle gpu-check clean help

help:
	@echo 'make setup  - create/update .venv (ROS 2 Jazzy wheels + launch/ros2 CLI/vision_msgs, PyTorch, weights)'
	@echo 'make demo   - run the node on a recorded bag of real footage; writes demo_output/'
	@echo 'make test   - run the whole test suite'
	@echo 'make test-fast - the tests that start no node process and convert no model (edit-run loop)'
	@echo 'make bench  - benchmark model vs segmenter vs node (prints a table, writes JSON)'
	@echo 'make eval   - mIoU of the default pretrained model on the shared ADE20K images'
	@echo 'make docs   - regenerate docs/parameters.md from the node parameter table'
	@echo 'make gpu-check-bundle - gpu_check_bundle/: all the GPU check needs besides torch and numpy'
	@echo 'make gpu-check - run gpu_check_bundle/run.py with $$(GPU_PYTHON) (no .venv needed)'

setup:
	@bash scripts/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest $(FAST_TESTS) $(PYTEST_ARGS)

demo: setup
	$(PY) -m deeplab_ros.tools.demo --output $(CURDIR)/demo_output

# BENCH_ARGS adds options, e.g. BENCH_ARGS='--against ../deeplab_ros_base' (another checkout).
BENCH_ARGS ?=

bench: setup
	$(PY) -m deeplab_ros.tools.bench --resolutions vga,1080p --input-sizes 321,513 \
		--iterations 20 --node-frames 100 --node-block 10 --json $(CURDIR)/bench_output/bench.json \
		$(BENCH_ARGS)

eval: setup
	$(PY) -m deeplab_ros.tools.evaluate

docs: setup
	$(PY) -m deeplab_ros.tools.parameters_doc --output $(CURDIR)/docs/parameters.md

# The GPU check: the bundle is built here (shared assets, converted models) and runs on a
# CUDA machine with only Python, torch and numpy, e.g. `make gpu-check GPU_PYTHON=python3.12`.
GPU_PYTHON ?= python3
GPU_CHECK_ARGS ?=

gpu-check-bundle: setup
	$(PY) -m deeplab_ros.tools.gpu_check_bundle --output $(CURDIR)/gpu_check_bundle

gpu-check:
	@test -f gpu_check_bundle/run.py || { echo 'no gpu_check_bundle/: build it with' \
		'`make gpu-check-bundle` where the shared assets are, then copy it here'; exit 2; }
	$(GPU_PYTHON) gpu_check_bundle/run.py --out $(CURDIR)/gpu_check_output/gpu_check.json \
		$(GPU_CHECK_ARGS)

clean:
	rm -rf build install log *.egg-info demo_output bench_output gpu_check_bundle \
		gpu_check_output .pytest_cache .mypy_cache
