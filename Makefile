# The two set-up commands: `make run` and `make test`. Both create .venv on first use.
# Python 3.11-3.13 (pyproject: >=3.11,<3.14; the tests run on 3.11): where `python3` is another version,
# `PY=python3.11 make ...`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
STUDY   ?= studies/quickstart.yaml
# The exact versions of every other dependency, the set the tests are recorded with (pip -c; docs/install.md)
CONSTRAINTS := constraints.txt

# Which torch build goes into .venv (docs/install.md, "CPU-only and GPU installs"):
#   TORCH=cuda  torch 2.14.1 with its CUDA libraries (6.9 GB venv); GPU machines stay on it.
#   TORCH=cpu   the CPU-only torch 2.13 (no NVIDIA libraries: 2.4 GB venv; every golden number the same). It needs
#               a CPU build of torchvision 0.28 as well, which PyPI does not carry for Linux (PyTorch's CPU wheel
#               index does: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu; docs/install.md).
#   TORCH=auto  cpu where the machine has no NVIDIA GPU (no nvidia-smi) and pip can find that CPU pair, else cuda:
#               the default for a new .venv (on the dev/CI machines it finds no CPU torchvision: cuda).
# Unset, it keeps the build an existing .venv has. Switching a CUDA .venv to cpu needs `make clean` first.
TORCH_CUDA ?= torch==2.14.1 torchvision==0.29.1
TORCH_CPU  ?= torch==2.13.0+cpu torchvision==0.28.0+cpu
INSTALLED_TORCH := $(if $(wildcard $(STAMP)),$(or $(strip $(shell cat $(STAMP))),cuda))
ifndef TORCH
TORCH := $(or $(INSTALLED_TORCH),auto)
endif
$(if $(filter-out cuda cpu auto,$(TORCH)),$(error TORCH=$(TORCH): use cuda, cpu or auto))
# an explicit TORCH=cuda|cpu other than the installed one reinstalls
TORCH_SWITCH := $(and $(INSTALLED_TORCH),$(filter cuda cpu,$(TORCH)),$(filter-out $(TORCH),$(INSTALLED_TORCH)))

.PHONY: run test test-fast test-all bench clean data FORCE

$(STAMP): pyproject.toml $(CONSTRAINTS) $(if $(TORCH_SWITCH),FORCE)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(MAKE) --no-print-directory data
	@# torch first, with pip (on the dev/CI machines from local disk), then the project; both under the constraints
	@cpu_ok() { $(BIN)/pip install -q --dry-run --no-deps $(TORCH_CPU) >/dev/null 2>&1; }; \
	case "$(TORCH)" in \
	  cuda) flavour=cuda ;; \
	  cpu) cpu_ok || { echo "TORCH=cpu: pip finds no '$(TORCH_CPU)' (PyPI has no CPU-only torchvision for" \
	         "Linux; PyTorch's CPU wheel index has both: docs/install.md). Nothing installed." >&2; exit 1; }; \
	       flavour=cpu ;; \
	  auto) if command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia ]; then flavour=cuda; \
	        elif cpu_ok; then flavour=cpu; else flavour=cuda; fi ;; \
	esac; \
	if [ $$flavour = cpu ] && ls -d $(VENV)/lib/python3*/site-packages/nvidia >/dev/null 2>&1; then \
	  echo "TORCH=cpu: $(VENV) holds the CUDA build; 'make clean' first, then 'TORCH=cpu make ...'." >&2; exit 1; fi; \
	if [ $$flavour = cpu ]; then spec="$(TORCH_CPU)"; else spec="$(TORCH_CUDA)"; fi; \
	echo "torch: $$flavour ($$spec)"; \
	$(BIN)/pip install -q -c $(CONSTRAINTS) $$spec && \
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[test]' && \
	echo $$flavour > $(STAMP)

FORCE:

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

# two processes, a test file each (module fixtures run once): 641 s instead of 1167 s on the 2-core dev machine
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -n 2 --dist loadfile

test-fast: $(STAMP)   # everyday work: the suite without the end-to-end runs (tests/conftest.py E2E)
	$(BIN)/python -m pytest -q -m 'not slow and not e2e'

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
