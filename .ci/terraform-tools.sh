#!/usr/bin/env bash
# Install checkov into a virtual environment of its own and print the path of its binary.
#
# checkov pins its own python-hcl2 (and many other packages) and conflicts with the
# python-hcl2 that the main test environment uses, so it never shares a venv with it.
#
# Usage:
#   export CHECKOV_BIN="$(bash .ci/terraform-tools.sh)"
#   python -m pytest tests/terraform
#
# Environment:
#   CHECKOV_VENV      where the venv lives (default: .venv-checkov under the repo root;
#                     a relative path is taken relative to the repo root)
#   CHECKOV_VERSION   pip requirement specifier for checkov (default: any version)
#   CHECKOV_PYTHON    interpreter used to create the venv (default: python3)
#
# Everything but the binary's path goes to stderr, so the output can be captured.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHECKOV_VENV:-.venv-checkov}"
case "$venv" in
  /*) ;;
  *) venv="$repo_root/$venv" ;;
esac
python="${CHECKOV_PYTHON:-python3}"
bin="$venv/bin/checkov"

if [ ! -x "$venv/bin/python" ]; then
  echo "terraform-tools: creating $venv" >&2
  "$python" -m venv "$venv" >&2
  # Keep the venv out of git without touching the repository's .gitignore.
  printf '*\n' > "$venv/.gitignore"
fi

# `checkov --version` also proves the install works (it imports the whole package).
if ! version="$("$bin" --version 2>/dev/null | tail -n 1)"; then
  echo "terraform-tools: installing checkov${CHECKOV_VERSION:-} into $venv" >&2
  "$venv/bin/python" -m pip install -qq --disable-pip-version-check \
    "checkov${CHECKOV_VERSION:-}" >&2
  version="$("$bin" --version | tail -n 1)"
fi

echo "terraform-tools: checkov $version at $bin" >&2
printf '%s\n' "$bin"
