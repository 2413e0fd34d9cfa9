# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint run bench faults migrate clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --no-input -v 0
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo

test: $(VENV)/.installed
	./scripts/test.sh $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --no-input

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-*
