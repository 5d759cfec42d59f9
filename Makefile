# pineapple-jobd developer commands. `make run` and `make test` are the two
# a newcomer needs (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUNDIR ?= run

.PHONY: run test lint bench venv clean

$(VENV)/.ready: setup.py requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . -r requirements-dev.txt
	touch $@

venv: $(VENV)/.ready

## run: start the daemon; on a dev machine against the opkg stand-in in a sandbox root under ./run
##      (kept between runs; `make run FRESH=1` builds it again)
run: venv
	$(PY) -m devtools.devrun --dir $(RUNDIR)$(if $(FRESH), --fresh)

## test: the whole test suite
test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check pineapple devtools tests bench modules tools

bench: venv
	$(PY) bench/churn.py

clean:
	rm -rf $(RUNDIR) build dist *.egg-info .pytest_cache

# OpenWrt package without an SDK (standard library only; see openwrt/README.md).
IPK_OUT            ?= dist
FEED_OUT           ?= $(IPK_OUT)/feed
IPK_PYTHON_VERSION ?= 3.11

.PHONY: ipk feed

## ipk: build dist/pineapple-jobd_<version>-<release>_all.ipk (reproducible)
ipk:
	$(PYTHON) tools/mkipk.py ipk --out $(IPK_OUT) --python-version $(IPK_PYTHON_VERSION)

## feed: build dist/feed/ (the .ipk plus Packages, Packages.gz) for opkg's src/gz
feed:
	$(PYTHON) tools/mkipk.py feed --out $(FEED_OUT) --python-version $(IPK_PYTHON_VERSION)
