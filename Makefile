# UnitedCron developer commands. `make test` is the test command; `make demo` runs it all locally.
#   make test PYTEST_ARGS='-k lease -x'     extra arguments for pytest
#   make test PYTEST_ARGS='-m "not mysql"'  without a MariaDB/MySQL server

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pip takes only "name==version" lines as constraints; `pip freeze` also writes the project
# itself (`-e /path`), which pip refuses there, so that line is left out.
CONSTRAINTS := $(VENV)/constraints.txt
STAMP := $(VENV)/.installed
PACKAGES := center agent protocol admin sql ctl i18n fuzz tests bench
PYTEST_ARGS ?=

.PHONY: install demo lint typecheck test format bench

install: $(STAMP)

# Re-installs only when pyproject.toml or constraints.txt changed (or the venv is new).
$(STAMP): pyproject.toml constraints.txt
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt install python3-venv" >&2; \
	  exit 1; }
	grep -v -e '^-e ' -e '^unitedcron[=@ ]' constraints.txt > $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

demo: install
	$(BIN)/unitedcron demo

lint: install
	$(BIN)/ruff check $(PACKAGES)
	$(BIN)/ruff format --check $(PACKAGES)
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

format: install
	$(BIN)/ruff format $(PACKAGES)
	$(BIN)/ruff check --fix $(PACKAGES)

bench: install
	@set -e; for script in bench/bench_*.py; do \
	  [ -e "$$script" ] || { echo "make: no bench/bench_*.py yet"; break; }; \
	  echo "== $$script"; \
	  $(BIN)/python "$$script"; \
	done
