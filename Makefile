# The two commands a newcomer needs (see README.md):
#   make demo   set up .venv (and clang on Linux), then run the continual-learning demo
#   make test   set up .venv, then run the test suite
PY := .venv/bin/python

.PHONY: demo test test-slow lessons setup

.venv/.installed: requirements.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: .venv/.installed

demo: .venv/.installed
	$(PY) -m minimac.learn

test: .venv/.installed
	$(PY) -m pytest

test-slow: .venv/.installed
	$(PY) -m pytest -m slow
