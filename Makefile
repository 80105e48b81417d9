# The README's two commands: `make benchmark` (main job) and `make test`.
.PHONY: setup test test-fast benchmark
setup: .venv/.setup-done
.venv/.setup-done: pyproject.toml requirements-lock.txt scripts/setup.sh
	./scripts/setup.sh
	touch $@

test: setup
	xvfb-run -a .venv/bin/python -m pytest -q

test-fast: setup  # for the edit-test loop: without the tests marked slow (fuzzing, training)
	xvfb-run -a .venv/bin/python -m pytest -q -m "not slow"

benchmark: setup
	.venv/bin/microcomp benchmark
