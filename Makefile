# The README's two commands are `make run` and `make test`; everything else is a helper.
#
# `.venv` is created with the system python3 (3.11) when missing. Requirements are (re)installed
# only when a requirements file is newer than its stamp in .venv, so repeated runs start at once.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Extra pytest arguments: make test ARGS="-k kyc -x"
ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help venv run test pytest manage lint fmt typecheck

help:
	@echo "make run        start the whole platform locally (web on http://127.0.0.1:8000)"
	@echo "make test       ruff, format check, mypy, migrations check, then pytest (ARGS=...)"
	@echo "make pytest     pytest only, against the same services (ARGS=...)"
	@echo "make manage     manage.py ARGS against run's services, e.g. ARGS=\"createsuperuser\""
	@echo "make lint       ruff check + ruff format --check"
	@echo "make fmt        ruff format + ruff check --fix"
	@echo "make typecheck  mypy"
	@echo "make venv       create .venv with the development requirements"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " (set PYTHON=/path/to/python3.11)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.requirements.stamp: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.requirements-dev.stamp: requirements-dev.txt requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.requirements.stamp

venv: $(VENV)/.requirements-dev.stamp

run: $(VENV)/.requirements.stamp
	$(PY) -m apps.ops.devstack run

test: $(VENV)/.requirements-dev.stamp
	$(PY) -m apps.ops.devstack test $(ARGS)

pytest: $(VENV)/.requirements-dev.stamp
	$(PY) -m apps.ops.devstack test --skip-checks $(ARGS)

manage: $(VENV)/.requirements.stamp
	$(PY) -m apps.ops.devstack manage $(ARGS)

lint: $(VENV)/.requirements-dev.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.requirements-dev.stamp
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The django-stubs plugin imports the settings, which need a SECRET_KEY when DEBUG is off.
typecheck: $(VENV)/.requirements-dev.stamp
	SECRET_KEY=$${SECRET_KEY:-typecheck-only-not-a-secret} $(VENV)/bin/mypy .
