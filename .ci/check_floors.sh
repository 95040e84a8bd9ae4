#!/usr/bin/env bash
# Install the lowest versions pyproject.toml allows (every dependency and extra at its floor)
# into a throwaway venv, check that they resolve together, and run a smoke test on them.
#
#   .ci/check_floors.sh [VENV]     (default /tmp/irl-floors; removed and rebuilt)
#
# torch is the exception: its floor's wheel on PyPI is a CUDA build of several GB, so the CPU
# wheel TORCH_SPEC (default torch==2.13.0) is installed instead and torch's floor is not
# exercised. Uses pip as configured on the machine (index, find-links, constraints).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-/tmp/irl-floors}"
python="${PYTHON:-python3.11}"  # tomllib (3.11+); the CPU torch wheel is for this Python

"$python" -m venv --clear "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
mapfile -t pins < <("$python" "$root/.ci/floors.py" --skip torch)
echo "floors: ${pins[*]}"
# The package is built from a copy of the working tree (tracked and untracked, not ignored
# files), so that the build leaves nothing in the checkout.
src="$(mktemp -d)"
(cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -t "$src")
# One resolution of the package with every pin: fails if the floors cannot coexist.
"$venv/bin/pip" install -q "$src[dev]" "${pins[@]}"
"$venv/bin/pip" check
names="$(printf '%s|' "${pins[@]%%[=[]*}" | sed 's/[-_]/[-_]/g')"
"$venv/bin/pip" freeze | grep -iE "^(${names}torch)==" || true  # what was installed

# Smoke test against the installed wheel (run outside the source tree so that the installed
# package, with its shipped weights, is what gets imported).
cd "$(mktemp -d)"
MUJOCO_GL="${MUJOCO_GL:-egl}" OMP_NUM_THREADS=1 "$venv/bin/python" -m pytest -q -x \
    -p no:cacheprovider --rootdir "$root" \
    "$root/tests/test_registry.py" "$root"/tests/test_conventions_*.py
echo "floors OK"
