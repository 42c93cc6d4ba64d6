#!/usr/bin/env bash
# Prints the path of a uv binary, installing the pinned one from PyPI into .tools/ if the
# machine has none. uv installs the locked Python dependencies (uv.lock).
set -euo pipefail
version="0.13.9"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v uv >/dev/null 2>&1; then
    command -v uv
    exit 0
fi
tools="$repo/.tools"
if [[ ! -x "$tools/bin/uv" ]]; then
    printf 'installing uv %s into .tools/\n' "$version" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "uv==$version"
fi
printf '%s\n' "$tools/bin/uv"
