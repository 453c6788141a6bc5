# hyperribbon — every target bootstraps .venv itself.
#   make book   run every chapter under the `ci` profile, check claims, build _build/html
#   make test   the whole test suite (unit, notebooks under smoke and ci, book, browser)
#   make sweep  an example sweep (GRID=..., NB=...): chapter 2 over seeds 0-4
#   make robustness  every chapter's five-seed sweep (notebooks/sweeps/NN_seeds.yml,
#               resumable) and the robustness page book/robustness.md
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
PROFILE  ?= ci
REPO_URL ?= https://github.com/hyperribbon/hyperribbon
PYTEST_ARGS ?=
NB       ?= 02
GRID     ?= notebooks/sweeps/02_seeds.yml

.PHONY: venv book test unit lint sweep robustness browser-deps wordnet-deps clean

$(BIN)/.installed: requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

venv: $(BIN)/.installed

book: venv
	$(BIN)/hyperribbon run --profile $(PROFILE)
	$(BIN)/hyperribbon book --repo-url $(REPO_URL)
	$(BIN)/hyperribbon claims --check

sweep: venv
	$(BIN)/hyperribbon sweep $(NB) $(GRID)

robustness: venv
	@for g in notebooks/sweeps/[0-9][0-9]_seeds.yml; do \
	  echo "sweep $$g"; $(BIN)/hyperribbon sweep $$(basename $$g | cut -c1-2) $$g || exit 1; done
	$(BIN)/python -c "from hyperribbon.compendium.robustness import write_page; \
	print('wrote', write_page())"

# Headless Chromium for the browser test: Debian's packages (never a downloaded browser).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium chromium-driver (the browser test will be skipped)"; fi; }

# WordNet 3.0 for chapter 5's fact-file test: Debian's wordnet-base (data.noun, index.noun).
wordnet-deps:
	@test -f /usr/share/wordnet/data.noun || dpkg -s wordnet-base >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null; \
	  else echo "wordnet-base is missing: sudo apt-get install wordnet-base (the WordNet fact-file test will be skipped)"; fi; }

test: venv browser-deps wordnet-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf _build book/papers book/claims.md
