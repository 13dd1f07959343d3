# The two set-up commands: `make run` and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
STUDY   ?= studies/quickstart.yaml

.PHONY: run test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# Fashion-MNIST for the image track (Debian package; CI runs as root). Never fails the build.
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } || \
	  echo "warning: install the Debian package dataset-fashion-mnist for the image track (tests that need it are skipped)"
	# torch first, with pip: on the dev/CI machines it installs from local disk.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ganbench run $(STUDY)   # writes results/<study>/ and its report

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
