#!/usr/bin/env bash
# Installs the Python-packaged tools the tests need into the project's own venv (.venv, ignored
# by git), pinned, so a fresh machine needs no manual step. Source it: it puts .venv/bin on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
pins="$root/scripts/requirements-tools.txt"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(sha256sum "$pins" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # uv resolves and installs the pins in seconds where pip took over a minute of a clean CI run.
  "$venv/bin/pip" install --quiet --disable-pip-version-check "uv==$(sed -n 's/^# uv==//p' "$pins")"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -r "$pins"
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
