#!/usr/bin/env bash
# Install the ROS 2 Jazzy parts that have no PyPI wheels into a virtual environment that holds
# the ROS 2 wheels: the launch system (launch, launch_xml, launch_yaml, launch_testing,
# launch_ros, launch_testing_ros, ros2launch), the `ros2` command line (ros2cli and the pkg,
# node, lifecycle, param, topic, service, run, interface verbs), rosidl_runtime_py, and the
# interface packages composition_interfaces and vision_msgs 4.1.1 (all upstream messages).
#
# The unmodified upstream source archives are read from <shared>/ros2 (DEEPLAB_ROS_SHARED,
# default ../shared beside the repository) and extracted into a temporary folder; nothing is
# copied into the repository. On a real ROS 2 install these come from the distribution and
# this script is not needed.
#
# Usage: scripts/install_ros_toolchain.sh [VENV]     (VENV defaults to <repo>/.venv)
# Idempotent: returns in about a second when the same archives are already installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${1:-$ROOT/.venv}" 2>/dev/null && pwd)" || {
  echo "install_ros_toolchain: virtual environment '${1:-$ROOT/.venv}' not found;" \
    "create it first (scripts/setup_env.sh)" >&2
  exit 1
}
PY="$VENV/bin/python"
SHARED="${DEEPLAB_ROS_SHARED:-$ROOT/../shared}"
ARCHIVE_DIR="$SHARED/ros2"
STAMP="$VENV/.deeplab_ros_ros2_toolchain.sha256"

# archive file -> the package folders inside it that are installed with pip.
ARCHIVES=(
  launch-jazzy-3.4.3.tar.gz
  launch_ros-jazzy-0.26.6.tar.gz
  ros2cli-jazzy-0.32.2.tar.gz
  rosidl_runtime_py-jazzy-0.13.1.tar.gz
  composition_interfaces-jazzy-2.0.2.tar.gz
  vision_msgs-4.1.1.tar.gz
)
PYTHON_PACKAGES=(
  launch/launch launch/launch_xml launch/launch_yaml launch/launch_testing
  launch_ros/launch_ros launch_ros/launch_testing_ros launch_ros/ros2launch
  rosidl_runtime_py
  ros2cli/ros2cli ros2cli/ros2pkg ros2cli/ros2node ros2cli/ros2lifecycle ros2cli/ros2param
  ros2cli/ros2topic ros2cli/ros2service ros2cli/ros2run ros2cli/ros2interface
)
# Python run in the venv that must succeed once everything is installed.
CHECK='
import composition_interfaces.srv
import launch_ros.actions
import launch_testing.actions
import ros2cli.cli
import vision_msgs.msg as m
m.Detection2DArray(); m.Detection3DArray(); m.LabelInfo(); m.Classification()
'

log() { printf '[setup] %s\n' "$*"; }

for archive in "${ARCHIVES[@]}"; do
  if [ ! -f "$ARCHIVE_DIR/$archive" ]; then
    echo "install_ros_toolchain: missing archive '$archive': looked for" \
      "$ARCHIVE_DIR/$archive (the upstream ROS 2 Jazzy sources; set DEEPLAB_ROS_SHARED to" \
      "the folder that holds ros2/, or install the distribution's packages)" >&2
    exit 1
  fi
done

wanted=$(cd "$ARCHIVE_DIR" && cat "${ARCHIVES[@]}" "$ROOT/scripts/install_ros_toolchain.sh" \
  "$ROOT/scripts/build_interface_package.sh" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ] && "$PY" -c "$CHECK" >/dev/null 2>&1; then
  exit 0
fi

log "installing the upstream ROS 2 launch system, ros2 CLI and interfaces from $ARCHIVE_DIR"
work="$(mktemp -d "${TMPDIR:-/tmp}/ros2_toolchain.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for archive in "${ARCHIVES[@]}"; do
  tar -xzf "$ARCHIVE_DIR/$archive" -C "$work"
done

# --no-deps: their install_requires name ROS packages (ament_index_python, rclpy, ...) that the
# wheels provide under other distribution names; their PyPI dependencies are in requirements.txt.
(cd "$work" && "$PY" -m pip install -q --disable-pip-version-check --no-deps \
  --no-build-isolation "${PYTHON_PACKAGES[@]/#/./}" 2>&1 \
  | grep -v -E "^WARNING: Location '.*' is ignored" || true)
(cd "$work" && "$PY" -m pip show -q launch_testing ros2cli ros2launch >/dev/null) || {
  echo "install_ros_toolchain: pip could not install the launch system / ros2 CLI" >&2
  exit 1
}

bash "$ROOT/scripts/build_interface_package.sh" "$work/composition_interfaces" "$VENV" \
  'import composition_interfaces.srv'
bash "$ROOT/scripts/build_interface_package.sh" "$work/vision_msgs" "$VENV" \
  'import vision_msgs.msg as m; m.Detection2DArray(); m.LabelInfo()'

"$PY" -c "$CHECK" || {
  echo "install_ros_toolchain: the installed toolchain does not import (see above)" >&2
  exit 1
}
echo "$wanted" > "$STAMP"
