# One task runner; .ci/run calls the same targets the README shows.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
INDEX ?= index/example
EXAMPLE_CORPUS := examples/clips.jsonl examples/page.txt
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install serve test index bench clean

# The venv is rebuilt only when pyproject.toml changes. torch goes first, pinned to the
# CPU wheel: left to the resolver, sentence-transformers pulls a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Rebuilt only when the example corpus changes; a rebuild swaps versions atomically.
$(INDEX)/current: $(BIN)/.installed $(EXAMPLE_CORPUS)
	$(BIN)/clipsearch index build $(EXAMPLE_CORPUS) --out $(INDEX)

index: $(INDEX)/current

serve: $(INDEX)/current
	$(BIN)/clipsearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(INDEX)
