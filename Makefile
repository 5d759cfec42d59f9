# pineapple-jobd developer commands. `make run` and `make test` are the two
# a newcomer needs (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUNDIR ?= run
# Extra requirements installed with the venv, e.g. PINS="paho-mqtt==1.5.1"
# (the test matrix below pins the oldest versions OpenWrt's feeds ship).
PINS   ?=

.PHONY: run test test-matrix test-cell lint bench bench-daemon venv clean

$(VENV)/.ready: setup.py requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . -r requirements-dev.txt $(PINS)
	touch $@

venv: $(VENV)/.ready

## run: start the daemon; on a dev machine against the opkg stand-in in a sandbox root under ./run
##      (kept between runs; `make run FRESH=1` builds it again)
run: venv
	$(PY) -m devtools.devrun --dir $(RUNDIR)$(if $(FRESH), --fresh)

## test: the whole test suite
test: venv
	$(PY) -m pytest

# The compatibility matrix: the oldest and newest Python we support, each in
# a venv of its own, with the paho-mqtt and sh OpenWrt releases ship (19.07:
# Python 3.7 + paho 1.5.1; 22.03-24.10: paho 1.6.1; our feed: sh 1.14.3).
# sh 2.x and paho 2.x are what `make test` runs on the default python3.
PY37         ?= /root/.pyenv/versions/3.7.16/bin/python
PY313        ?= /root/.pyenv/versions/3.13.0/bin/python
MATRIX_TESTS ?= tests/test_imports.py tests/jobs tests/opkg tests/api tests/cli tests/modules tests/mqtt tests/helpers tests/logger

## test-matrix: the engine, opkg, socket API, client, CLI, module and MQTT tests on Python 3.7 and 3.13
test-matrix:
	$(MAKE) --no-print-directory test-cell PYTHON=$(PY37) VENV=.venv-py37 PINS="paho-mqtt==1.5.1 sh==1.14.3"
	$(MAKE) --no-print-directory test-cell PYTHON=$(PY313) VENV=.venv-py313 PINS="paho-mqtt==1.6.1 sh==1.14.3"

# One cell: MATRIX_TESTS in $(VENV) built with $(PYTHON) and $(PINS). The
# browser test is left out: it checks the page in Chromium, which no Python
# version changes (the module backends it talks to are covered by the rest).
test-cell: venv
	$(PY) -c 'import sys, paho.mqtt as p, sh; print("matrix cell: Python", sys.version.split()[0], "paho-mqtt", p.__version__, "sh", sh.__version__)'
	$(PY) -m pytest -q --ignore=tests/modules/test_browser.py $(MATRIX_TESTS)

lint: venv
	$(VENV)/bin/ruff check pineapple devtools tests bench modules tools

bench: venv
	$(PY) bench/churn.py

# bench/daemon.py in a bench-only venv: sh 1.14.3 as our feed ships it, and
# huey and APScheduler for the baselines (never dependencies of the daemon).
BENCH_VENV ?= .venv-bench
## bench-daemon: the daemon benchmark beside huey and APScheduler (ARGS="--phases work --jobs 20000")
bench-daemon:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet "sh==1.14.3" paho-mqtt "huey>=3,<4" "APScheduler>=3.11,<4"
	$(BENCH_VENV)/bin/python bench/daemon.py $(ARGS)

clean:
	rm -rf $(RUNDIR) build dist *.egg-info .pytest_cache

# OpenWrt packages without an SDK, and the release tarball the feed's
# Makefile downloads (standard library only; see openwrt/README.md).
IPK_OUT            ?= dist
FEED_OUT           ?= $(IPK_OUT)/feed
IPK_PYTHON_VERSION ?= 3.11
# Free flash on the device in KiB (`df -k /overlay`, Available), for the footprint check.
FREE_FLASH_KB      ?=
# A release feed's Packages(.gz) for exact sizes of what the packages pull in.
RELEASE_INDEX      ?=
# Where PyPI sdists (sh for python3-sh) are kept, as the SDK's dl/.
DL_DIR             ?= $(IPK_OUT)/dl
IPK_OPTIONS        = --python-version $(IPK_PYTHON_VERSION) --dl $(DL_DIR) \
                     $(if $(FREE_FLASH_KB),--free-kb $(FREE_FLASH_KB)) $(if $(RELEASE_INDEX),--index $(RELEASE_INDEX))

.PHONY: ipk feed dist

## ipk: build dist/pineapple-jobd_*.ipk and dist/python3-sh_*.ipk (reproducible) and report their footprint
ipk:
	$(PYTHON) tools/mkipk.py ipk --out $(IPK_OUT) $(IPK_OPTIONS)

## feed: build dist/feed/ (both .ipk files plus Packages, Packages.gz) for opkg's src/gz
feed:
	$(PYTHON) tools/mkipk.py feed --out $(FEED_OUT) $(IPK_OPTIONS)

## dist: build dist/pineapple-jobd-<version>.tar.gz, the release tarball (PKG_SOURCE), reproducibly
dist:
	$(PYTHON) tools/mkdist.py --out $(IPK_OUT)
