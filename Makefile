# The two commands of the README:
#   make bench   set everything up, then run the embedded default benchmark (no download)
#   make test    set everything up, then run the test suite (what CI runs: .ci/run)
PYTHON ?= python3
VENV ?= .venv
# CI and these machines use the CPU wheel; elsewhere pass e.g. TORCH_SPEC="torch>=2.4" to pick yours.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test files run in parallel (pytest-xdist), one file per worker so that a file's shared fixtures
# (e.g. a fast-path build) are made once; at most 4 workers, each a torch process.
PYTEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: setup system-deps bench test speed leaderboard clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,cluster]"
	touch $@

# Debian packages some integration tests use (headless Chromium, Slurm, Fashion-MNIST, tcmalloc and jemalloc);
# installed when running as root with apt-get, otherwise those tests say why they skip.
system-deps:
	@bash scripts/system-deps.sh

# The allocator the command line prefers (tcmalloc, best effort: benchopt_bilevel/allocator.py).
bench: setup
	@bash scripts/system-deps.sh allocator
	$(BIN)/benchopt-bilevel run --jobs 2

# pytest exits 5 when a selection (PYTEST_ARGS) matches no test: not a failure of the suite.
# PYTEST_WORKERS= (empty) runs the tests in one process.
# The browser test keeps its leaderboard screenshot in tests/artifacts/ (git-ignored) here.
test: setup system-deps
	BENCHOPT_BILEVEL_KEEP_SCREENSHOT=1 $(BIN)/python -m pytest -q -ra $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests selected"; rc=0; fi; exit $$rc

# Speed benchmarks (pytest-benchmark) of speed/; the asv suite in speed/asv runs with asv itself.
speed: setup
	$(BIN)/python -m pytest -q speed --benchmark-only --benchmark-columns=mean,stddev,rounds

# The reference leaderboard (protocol: reference-leaderboard.yml; docs/leaderboard.md): tune every
# reference solver on every problem with the same budget, publish the bundle to docs/leaderboard/
# and the site to site/, rewrite the README's table. QUICK=1: the quick protocol (a 2-core CPU).
# Rerunning resumes: runs already complete in results/reference*/ are reused.
leaderboard: setup
	$(BIN)/python scripts/reference_leaderboard.py $(if $(QUICK),--quick) $(LEADERBOARD_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
