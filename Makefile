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

.PHONY: install chromium serve test index bench clean

# The venv is rebuilt only when pyproject.toml changes. torch goes first, pinned to the
# CPU wheel: left to the resolver, sentence-transformers pulls a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed chromium

# The browser tests (pytest -m browser) drive Debian's chromium through Playwright: Playwright's own browser
# download cannot reach its servers here. Installed with apt as root, or through sudo when it needs no password.
APT_INSTALL := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then $(APT_INSTALL); \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n sh -c '$(APT_INSTALL)'; \
	  else echo "error: the browser tests need Debian's chromium; run as root: $(APT_INSTALL)" >&2; exit 1; fi; }

# Rebuilt only when the example corpus changes; a rebuild swaps versions atomically.
$(INDEX)/current: $(BIN)/.installed $(EXAMPLE_CORPUS)
	$(BIN)/clipsearch index build $(EXAMPLE_CORPUS) --out $(INDEX)

index: $(INDEX)/current

serve: $(INDEX)/current
	$(BIN)/clipsearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

# The shipped paraphrase and off-topic questions; report.md and plots go to reports/example (git-ignored).
bench: $(INDEX)/current
	$(BIN)/clipsearch bench --index $(INDEX) --queries examples/questions.jsonl --queries examples/offtopic.jsonl \
		--report reports/example --json reports/example/bench.json

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(INDEX)
