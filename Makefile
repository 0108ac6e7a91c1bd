# The course's commands. `make lab` to learn, `make test` to check everything.
# Both set up .venv first (once; again only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := attention-course
LAB_ARGS ?=
# Jupyter refuses to run as root unless asked; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# The browser test drives this Chromium (never a downloaded one): $(CHROMIUM), else the PATH's.
CHROMIUM_BIN := $(or $(CHROMIUM),$(shell command -v chromium || command -v chromium-browser))

.PHONY: lab test unit nbval student browser lint format bench outputs clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, found " + sys.version.split()[0] + ": set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Attention course"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP) lint unit nbval student browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	MPLBACKEND=Agg $(BIN)/pytest tests --ignore=tests/browser

nbval: $(STAMP)
	$(BIN)/pytest $(NBVAL) notebooks/

# Student copies (solutions stubbed, outputs cleared) in student/, checked to run top to bottom.
student: $(STAMP)
	rm -rf student
	$(BIN)/python -m course_utils.student notebooks/ student/
	$(BIN)/pytest --nbval-lax --nbval-current-env -p no:cacheprovider student/

# Lessons 04 and 02 in JupyterLab in headless Chromium: run all cells, move the explorers'
# controls, check what they show. Screenshots in build/browser/. Without Chromium it says so and
# passes, unless REQUIRE_BROWSER=1 (CI sets it).
browser: $(STAMP)
ifeq ($(CHROMIUM_BIN),)
	@echo "make browser: SKIPPED, no Chromium on this machine, so JupyterLab was not tried in a browser."
	@echo "  Install Debian's package (apt-get install chromium) or set CHROMIUM=/path/to/chromium."
	@test "$(REQUIRE_BROWSER)" != 1 || { echo "REQUIRE_BROWSER=1: failing."; exit 1; }
else
	CHROMIUM=$(CHROMIUM_BIN) REQUIRE_BROWSER=1 $(BIN)/pytest -p no:cacheprovider tests/browser
	@echo "make browser: screenshots in build/browser/"
endif

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-run every notebook in place to refresh its stored outputs (for course authors).
outputs: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=$(KERNEL) --ExecutePreprocessor.timeout=600 \
		notebooks/*.ipynb

bench: $(STAMP)
	$(BIN)/python tests/bench_notebooks.py notebooks/*.ipynb
	$(BIN)/python tests/bench_kv_cache.py
	$(BIN)/python tests/bench_attention.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build student
