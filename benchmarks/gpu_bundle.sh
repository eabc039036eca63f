#!/usr/bin/env bash
# Prepares .whl/ for benchmarks/gpu_cupy_check.sh on a GPU machine that cannot reach a package
# index: a wheel of spikeloom built from the last commit (HEAD, not the working tree) and the
# pure-Python dependency such a machine may lack (array-api-compat, at the version installed here).
# The GPU machine needs Python with numpy, attrs, pluggy, pytest, torch and CuPy already.  There,
# from the repository root:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && \
#       PYTHON=python3 bash benchmarks/gpu_cupy_check.sh
#
# (installed from the wheel, the backends' entry points are registered, as for a user).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python || command -v python3)}
if ! git diff --quiet HEAD -- core plugins conformance pyproject.toml; then
    echo "note: the wheel is built from HEAD; core/, plugins/, conformance/ or pyproject.toml have uncommitted changes" >&2
fi
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git archive HEAD | tar -x -C "$src"
rm -rf .whl
mkdir -p .whl
"$PY" -m pip wheel -q --no-deps -w .whl "$src"
compat=$("$PY" -c "from importlib.metadata import version; print(version('array-api-compat'))")
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl "array-api-compat==$compat"
ls -l .whl
echo "commit: $(git rev-parse --short HEAD)"
