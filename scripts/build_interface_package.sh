#!/usr/bin/env bash
# Build an upstream ROS 2 interface package (CMake, rosidl) from its source folder and
# install it into a virtual environment that holds the ROS 2 wheels, e.g. vision_msgs or
# composition_interfaces where the distribution's package is not available.
#
# Usage: scripts/build_interface_package.sh SOURCE_DIR VENV CHECK_PYTHON
#   CHECK_PYTHON: Python code run in the venv afterwards that must succeed
#                 (e.g. 'import vision_msgs.msg').
# Quiet on success; on failure prints the step that failed and the tail of its log.
set -euo pipefail

NAME="build_interface_package"
SRC="$(cd "${1:?source folder}" && pwd)"
VENV="$(cd "${2:?virtual environment}" 2>/dev/null && pwd)" || {
  echo "$NAME: virtual environment '$2' not found; create it first (scripts/setup_env.sh)" >&2
  exit 1
}
CHECK="${3:?python check}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "$NAME: $PY is missing; '$VENV' is not a virtual environment" >&2
  exit 1
fi

if ! command -v cmake >/dev/null 2>&1 && [ ! -x "$VENV/bin/cmake" ]; then
  echo "$NAME: cmake not found; install it (apt-get install cmake, or" \
    "'$PY -m pip install cmake')" >&2
  exit 1
fi
CMAKE="$(command -v cmake || echo "$VENV/bin/cmake")"
if [ -x "$VENV/bin/cmake" ]; then CMAKE="$VENV/bin/cmake"; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$SRC")_build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$work/build.log"

fail() {
  echo "$NAME ($(basename "$SRC")): $1 failed; last lines of the log:" >&2
  tail -n 40 "$log" >&2
  exit 1
}

# The wheels' exported CMake files name the include dirs of the machine that built them
# (/opt/python/cp311-cp311/include/python3.11 and its numpy): point them at this machine's.
"$PY" - "$VENV" >>"$log" 2>&1 <<'PYEOF' || fail 'rewriting the Python include dirs'
import glob
import re
import sys
import sysconfig

import numpy

venv = sys.argv[1]
python_include = sysconfig.get_paths()['include']
numpy_include = numpy.get_include()
python_pattern = re.compile(r'[^";\s()]*/include/python3\.\d+(?=[";\s)]|\Z)')
numpy_pattern = re.compile(r'[^";\s()]*/numpy/(?:_core|core)/include(?=[";\s)]|\Z)')
changed = 0
for path in glob.glob(f'{venv}/share/*/cmake/**/*.cmake', recursive=True):
    with open(path, encoding='utf-8') as stream:
        text = stream.read()
    new = python_pattern.sub(lambda _: python_include, text)
    new = numpy_pattern.sub(lambda _: numpy_include, new)
    if new != text:
        with open(path, 'w', encoding='utf-8') as stream:
            stream.write(new)
        changed += 1
print(f'rewrote include dirs in {changed} files: {python_include} {numpy_include}')
PYEOF

export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# Run the generators with this venv's interpreter (the wheels' bootstrapper sets the library
# path for it); an inherited flag from another environment would skip that.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
export PATH="$VENV/bin:$PATH"

"$CMAKE" -S "$SRC" -B "$work/build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" \
  -DPYTHON_EXECUTABLE="$PY" \
  -DBUILD_TESTING=OFF >>"$log" 2>&1 || fail 'cmake configure'
"$CMAKE" --build "$work/build" -j "$(nproc 2>/dev/null || echo 2)" >>"$log" 2>&1 \
  || fail 'cmake build'
"$CMAKE" --install "$work/build" >>"$log" 2>&1 || fail 'cmake install'

if ! "$PY" -c "$CHECK" >>"$log" 2>&1; then
  fail "checking the installed package ($CHECK)"
fi
