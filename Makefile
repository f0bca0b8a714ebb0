# make demo: set up .venv if needed, then run the main job.
# make test: set up .venv if needed, then run the tests and the notebooks (nbval).
# make lab: open the notebooks in JupyterLab, on the environment of .venv.
# make docs: build the offline site (README, docs, executed notebooks) into build/site.
# make browser-test: notebooks 1, 2, 4 and the docs site in Chromium (Playwright; apt-get install chromium).
# make figures: redraw figures/ (method figures; training figures from runs/ when present).
# make bench: add the bench extra (transformers, for the HF peer) and run the CPU benchmarks, which
#   update benchmarks/RESULTS.md and figures/step_cost_vs_length.png (long: BENCH_ARGS to pass flags).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HF_STAMP := $(VENV)/.transformers
DOCS_STAMP := $(VENV)/.docs
BROWSER_STAMP := $(VENV)/.browser

.PHONY: demo test figures bench lab docs clean

$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pmlm.demo

# the optional transformers extra (pinned in requirements-bench.txt against the lock), so that the
# Hugging Face export tests run rather than skip
$(HF_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $(HF_STAMP)

test: $(STAMP) $(HF_STAMP)
	$(PY) -m pytest -q

# make lab: JupyterLab on the project's environment, opened on notebooks/
lab: $(STAMP)
	$(PY) -m jupyter lab notebooks/

# make docs: the offline site of the README, docs/ and the executed notebooks, in build/site
$(DOCS_STAMP): $(STAMP) requirements-docs.txt
	$(PY) -m pip install --quiet -r requirements-docs.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) scripts/build_docs.py

# make browser-test: the widgets of notebooks 1, 2 and 4 in JupyterLab and the offline site, in Debian's
# Chromium driven by Playwright (pinned in requirements-browser.txt); screenshots in build/browser
.PHONY: browser-test
$(BROWSER_STAMP): $(STAMP) requirements-browser.txt
	$(PY) -m pip install --quiet -r requirements-browser.txt
	touch $(BROWSER_STAMP)

browser-test: docs $(BROWSER_STAMP)
	$(PY) -m pytest -q -m browser tests/browser

figures: $(STAMP)
	$(PY) -m pmlm.figures

bench: $(STAMP) $(HF_STAMP)
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	$(PY) benchmarks/step_cost.py --write $(BENCH_ARGS)
	$(PY) benchmarks/collator_throughput.py --write
	$(PY) benchmarks/scaling.py --write

clean:
	rm -rf $(VENV) runs build
