"""``deeplab-ros-models``: list, fetch and convert the pretrained models ahead of time.

    deeplab-ros-models list                  # names, cached or not, source file, URL
    deeplab-ros-models fetch                 # prepare the default model
    deeplab-ros-models fetch --all           # every pretrained model (offline robots)
    deeplab-ros-models fetch NAME --offline  # only from the cache / local files, no download

In a ROS 2 workspace: ``ros2 run deeplab_ros deeplab-ros-models list`` (console scripts are
installed in ``lib/deeplab_ros``, not on PATH). A model is looked for in the cache, then in the
user weights folders (DEEPLAB_ROS_WEIGHTS_PATH), then in the shared weights folder of a source
checkout, then downloaded from its publisher with a sha256 check, converted and cached.
"""

from __future__ import annotations

import argparse
import sys

from deeplab_ros.core.weights import pretrained
from deeplab_ros.core.weights.locations import cache_dir, shared_dir, user_weights_dirs
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='deeplab-ros-models', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('list', help='list the pretrained models and where they are')
    fetch = commands.add_parser('fetch', help='prepare models: find or download, convert, '
                                              'cache')
    fetch.add_argument('names', nargs='*', help='models to prepare (default: the default one)')
    fetch.add_argument('--all', action='store_true', help='prepare every pretrained model')
    fetch.add_argument('--offline', action='store_true', help='never download')
    return parser


def _list() -> int:
    print(f'cache: {cache_dir()}')
    print(f'user weights folders: {", ".join(map(str, user_weights_dirs()))}')
    print(f'shared folder: {shared_dir()}')
    for name, spec in pretrained.PRETRAINED.items():
        default = ' (default)' if name == pretrained.DEFAULT_PRETRAINED else ''
        state = 'cached' if pretrained.is_cached(spec) else 'not prepared'
        print(f'{name}{default} [{state}]: {spec.summary}\n'
              f'    source {spec.tflite_file} sha256 {spec.sha256 or "-"}\n'
              f'    url {spec.url or "-"}')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == 'list':
        return _list()
    names = list(pretrained.PRETRAINED) if args.all else \
        (args.names or [pretrained.DEFAULT_PRETRAINED])
    status = 0
    for name in names:
        try:
            path = pretrained.pretrained_checkpoint(name, allow_download=not args.offline)
            print(f'{name}: {path}')
        except TOOL_FAILURES as error:
            status = report_failure(parser.prog, error, parser)
    return status


if __name__ == '__main__':
    sys.exit(main())
