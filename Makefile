# The README's two commands: `make benchmark` (main job) and `make test`.
.PHONY: setup test benchmark
setup: .venv/.setup-done
.venv/.setup-done: pyproject.toml requirements-lock.txt scripts/setup.sh
	./scripts/setup.sh
	touch $@

test: setup
	xvfb-run -a .venv/bin/python -m pytest -q

benchmark: setup
	.venv/bin/microcomp benchmark
