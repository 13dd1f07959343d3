# The two set-up commands: `make run` and `make test`. Both create .venv on first use.
# Python 3.11 (pyproject: >=3.11,<3.12): where `python3` is another version, `PY=python3.11 make ...`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
STUDY   ?= studies/quickstart.yaml

.PHONY: run test test-all bench clean data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(MAKE) --no-print-directory data
	# torch first, with pip: on the dev/CI machines it installs from local disk.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST for the image track: the Debian/Ubuntu package dataset-fashion-mnist (its IDX files go to
# /usr/share/datasets/fashion-mnist). Never fails the build. As root: apt-get. Otherwise passwordless sudo
# (`sudo -n`: never a prompt; e.g. a cloud image's default user). Otherwise, with GANBENCH_DATA set, the package
# is unpacked without root (apt-get download + dpkg -x) into $GANBENCH_DATA/fashion-mnist, where
# bench/data/images.py looks first.
FMNIST  := /usr/share/datasets/fashion-mnist
FMNIST_PKG := dataset-fashion-mnist
APT_GET := env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300

data:
	@have() { [ -f "$$1/train-images-idx3-ubyte.gz" ]; }; \
	if have $(FMNIST) || { [ -n "$$GANBENCH_DATA" ] && have "$$GANBENCH_DATA/fashion-mnist"; }; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then su=; elif sudo -n true 2>/dev/null; then su="sudo -n"; else su=none; fi; \
	if [ "$$su" != none ]; then $$su $(APT_GET) update && $$su $(APT_GET) install -y $(FMNIST_PKG) && exit 0; fi; \
	if [ -n "$$GANBENCH_DATA" ]; then \
	  tmp=$$(mktemp -d); \
	  (cd "$$tmp" && apt-get -qq download $(FMNIST_PKG) && dpkg -x $(FMNIST_PKG)_*.deb root) && \
	    mkdir -p "$$GANBENCH_DATA/fashion-mnist" && cp "$$tmp/root$(FMNIST)"/*.gz "$$GANBENCH_DATA/fashion-mnist/"; \
	  rm -rf "$$tmp"; have "$$GANBENCH_DATA/fashion-mnist" && exit 0; \
	fi; \
	echo "warning: no Fashion-MNIST (image track; tests that need it are skipped): install the package $(FMNIST_PKG)," \
	     "or set GANBENCH_DATA=DIR and run 'make data' to unpack it there without root"

run: $(STAMP)
	$(BIN)/ganbench run $(STUDY)   # writes results/<study>/ and its report

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
