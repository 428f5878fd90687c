#!/usr/bin/env bash
# Build and install the vision_msgs interfaces the node publishes (ObjectHypothesis,
# Classification, VisionClass, LabelInfo) into a virtual environment that holds the ROS 2
# wheels. On a real ROS install vision_msgs comes from the distribution
# (ros-$ROS_DISTRO-vision-msgs) and this script returns at once.
#
# Usage: scripts/build_vision_msgs.sh [VENV]     (VENV defaults to <repo>/.venv)
# Quiet on success; on failure prints the step that failed and the tail of its log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${1:-$ROOT/.venv}" 2>/dev/null && pwd)" || {
  echo "build_vision_msgs: virtual environment '${1:-$ROOT/.venv}' not found;" \
    "create it first (scripts/setup_env.sh)" >&2
  exit 1
}
PY="$VENV/bin/python"
SRC="$ROOT/scripts/vision_msgs"

if [ ! -x "$PY" ]; then
  echo "build_vision_msgs: $PY is missing; '$VENV' is not a virtual environment" >&2
  exit 1
fi

if "$PY" -c 'import vision_msgs.msg' >/dev/null 2>&1; then
  exit 0
fi

if ! command -v cmake >/dev/null 2>&1 && [ ! -x "$VENV/bin/cmake" ]; then
  echo "build_vision_msgs: cmake not found; install it (apt-get install cmake, or" \
    "'$PY -m pip install cmake')" >&2
  exit 1
fi
CMAKE="$(command -v cmake || echo "$VENV/bin/cmake")"
if [ -x "$VENV/bin/cmake" ]; then CMAKE="$VENV/bin/cmake"; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/vision_msgs_build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$work/build.log"

fail() {
  echo "build_vision_msgs: $1 failed; last lines of the log:" >&2
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

if ! "$PY" -c 'import vision_msgs.msg as m; m.Classification(); m.LabelInfo()' >>"$log" 2>&1
then
  fail 'importing the installed vision_msgs'
fi
