# Each target installs what it needs first (a venv with torch 2.13.0 CPU, then the lock file).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install demo test lint bench clean chromium postgresql eval

# llama-cpp-python is built once per machine with explicit CPU flags (the default native build
# crashes on VMs whose CPU advertises AMX, so AMX stays off) and kept as a wheel outside the
# repository. AVX-512 and its extensions are added where /proc/cpuinfo lists them (prompt
# evaluation about 1.7x faster on the 2-core machine of bench/README.md); the wheel folder is
# named after the flags, so a wheel is only reused by a build with the same flags.
WHEELS_ROOT ?= $(HOME)/.cache/safellm/wheels
LLAMA_VERSION := 0.3.36
CPU_FLAGS := $(shell cat /proc/cpuinfo 2>/dev/null | grep -m1 '^flags')
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  $(if $(filter avx512f,$(CPU_FLAGS)),-DGGML_AVX512=ON \
    $(if $(filter avx512vbmi,$(CPU_FLAGS)),-DGGML_AVX512_VBMI=ON) \
    $(if $(filter avx512_vnni,$(CPU_FLAGS)),-DGGML_AVX512_VNNI=ON) \
    $(if $(filter avx512_bf16,$(CPU_FLAGS)),-DGGML_AVX512_BF16=ON))
WHEELS ?= $(WHEELS_ROOT)/$(shell echo '$(strip $(LLAMA_CMAKE))' | sha256sum | cut -c1-12)

$(STAMP): requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip==25.3
	$(PIP) torch==2.13.0
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_VERSION) for this CPU (about 5 minutes, once): $(strip $(LLAMA_CMAKE))"; \
	  CMAKE_ARGS="$(strip $(LLAMA_CMAKE))" $(PY) -m pip wheel --quiet --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION); }
	$(PIP) --find-links $(WHEELS) --only-binary llama-cpp-python -r requirements.lock
	$(PIP) --no-deps -e .
	# the independent CDS Hooks client of the tests; its pins (fastapi<0.138, httpx<0.28) do not
	# hold its client models back, so it comes without its dependencies
	$(PIP) --no-deps healthchain==0.16.1 colorama==0.4.6
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/safellm demo

# the browser test drives Debian's Chromium (no `playwright install` offline)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "the browser test needs Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# the PostgreSQL tests start a server of their own (Debian's binaries, a temporary data folder)
postgresql:
	@{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "the PostgreSQL tests need Debian's postgresql: sudo apt-get install postgresql" >&2; exit 1; fi; }

test: $(STAMP) chromium postgresql
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# the full eval suite on the packaged local model (builds the synthetic hospital and trains the
# three task models first when they are missing), prompts v1 (free text) and v3 (the default: v2's
# slot rules, compact) side by side in one report (each with the chat prompt of its version for
# follow-ups), one patient's cases after another so each patient's prompt is evaluated once;
# reports in $(HOME_DIR)/eval/default.v1/; an interrupted run continues from its cached cases
HOME_DIR = $${SAFELLM_HOME:-.safellm}
eval: $(STAMP)
	@test -f "$(HOME_DIR)/models/readmission/LATEST" || $(VENV)/bin/safellm demo --model fake
	@for t in icu_mortality los; do test -f "$(HOME_DIR)/models/$$t/LATEST" || \
	  $(VENV)/bin/safellm train --task $$t --n-boot 100 || exit 1; done
	$(VENV)/bin/safellm eval --model local --prompt explain-risk:1 --prompt explain-risk:3 --by-patient

bench: $(STAMP)
	$(PY) bench/etl.py

clean:
	rm -rf $(VENV) .safellm .pytest_cache .mypy_cache .ruff_cache
