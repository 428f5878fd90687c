#!/usr/bin/env bash
# Create or update the local environment in .venv: ROS 2 Jazzy wheels, PyTorch, the upstream
# ROS 2 launch system, ros2 CLI and interface packages (vision_msgs, composition_interfaces)
# built from ../shared/ros2, colcon, this package, and the pretrained checkpoints converted
# from the shared TFLite models. Idempotent: a second run only checks and returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEEPLAB_ROS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.deeplab_ros_requirements.sha256"

log() { printf '[setup] %s\n' "$*"; }
quiet_pip() {
  # A local index folder named in pip's configuration that does not exist makes pip print one
  # warning per package; keep the output to what matters.
  "$VENV/bin/python" -m pip "$@" 2>&1 | grep -v -E "^WARNING: Location '.*' is ignored" || true
  return "${PIPESTATUS[0]}"
}

if [ ! -x "$VENV/bin/python" ]; then
  version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$version" in
    3.10|3.11|3.12) ;;
    *) echo "Python 3.10-3.12 is needed (found $version at $(command -v "$PYTHON")); set PYTHON=..." >&2
       exit 1 ;;
  esac
  log "creating $VENV with $PYTHON ($version)"
  "$PYTHON" -m venv "$VENV"
fi

wanted=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
  log "installing Python packages (first run: a few minutes, ~6 GB)"
  quiet_pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$wanted" > "$STAMP"
fi

# launch, launch_testing, ros2cli, vision_msgs, ...: from the distro on a real ROS install;
# from the upstream source archives here.
bash "$ROOT/scripts/install_ros_toolchain.sh" "$VENV"

# The package itself, with its launch/config files and ament index marker in $VENV/share.
log "installing deeplab_ros into $VENV"
tmp_build=$(mktemp -d)
trap 'rm -rf "$tmp_build"' EXIT
cp -r "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" "$ROOT/resource" \
  "$ROOT/deeplab_ros" "$ROOT/launch" "$ROOT/config" "$tmp_build/"
(cd "$tmp_build" && quiet_pip install -q --no-deps --no-build-isolation --force-reinstall .)

# `ros2 run` and `ros2 launch` look for a package's executables in <prefix>/lib/<package>
# (colcon puts them there); pip puts console scripts in bin/, so link them into lib/deeplab_ros.
rm -rf "$VENV/lib/deeplab_ros"
mkdir -p "$VENV/lib/deeplab_ros"
"$VENV/bin/python" - "$VENV" <<'PYEOF'
import importlib.metadata
import os
import sys

venv = sys.argv[1]
for entry in importlib.metadata.distribution('deeplab_ros').entry_points:
    if entry.group == 'console_scripts':
        os.symlink(os.path.join('..', '..', 'bin', entry.name),
                   os.path.join(venv, 'lib', 'deeplab_ros', entry.name))
PYEOF

# The venv is a ROS prefix (ament index under share/): every Python started from it adds it to
# AMENT_PREFIX_PATH, as sourcing /opt/ros/<distro>/setup.bash does on a ROS install, so
# `.venv/bin/ros2 ...` finds its packages and a sourced colcon workspace stacks on top of it.
site_packages=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$site_packages/deeplab_ros_ament_prefix.pth" <<'PTHEOF'
import os, sys; _p = os.environ.get('AMENT_PREFIX_PATH', ''); os.environ['AMENT_PREFIX_PATH'] = _p if sys.prefix in _p.split(os.pathsep) else os.pathsep.join(filter(None, (_p, sys.prefix)))
PTHEOF

# Every pretrained checkpoint, converted once into the cache (from the shared TFLite files;
# a file not there is downloaded from its publisher).
log "preparing pretrained checkpoints"
"$VENV/bin/python" -m deeplab_ros.tools.models fetch --all
log "ready: $VENV"
