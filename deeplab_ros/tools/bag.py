"""``deeplab-ros-bag``: make, play, record and inspect rosbag2 bags of camera streams.

Examples::

    deeplab-ros-bag make traffic.mp4 -o traffic_bag --max-frames 20 --resize 640x360
    deeplab-ros-bag make ../shared/data/rgbd -o rgbd_bag --format jpeg   # + depth, camera.yaml
    deeplab-ros-bag info traffic_bag
    deeplab-ros-bag info recording.bag        # ROS 1 bags too (info and play)
    deeplab-ros-bag play traffic_bag --rate 0.5 --remap /camera/image_raw:=/image
    deeplab-ros-bag record -o out_bag /segmentation/labels /segmentation/overlay --duration 10

Arguments after --ros-args go to rcl (e.g. --ros-args -p use_sim_time:=true).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
import sys
import time

from deeplab_ros.bagtools.info import read_bag_info
from deeplab_ros.bagtools.sources import BagError, parse_size
from deeplab_ros.bagtools.writer import BAG_VERSIONS, ENCODINGS, IMAGE_FORMATS
from deeplab_ros.bagtools.writer import ImageBagSpec, STORAGE_PLUGINS, write_image_bag
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be positive, got {text}')
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be positive, got {text}')
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except BagError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog='deeplab-ros-bag', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)

    make = commands.add_parser('make', help='make a bag from a video file or image folder')
    make.add_argument('sources', type=Path, nargs='+', metavar='SOURCE',
                      help='video file (mp4, avi, ...) or image folder; several are written '
                           'one after the other. An RGB-D folder (color/, depth/, camera.yaml) '
                           'also gives depth and its intrinsics')
    make.add_argument('-o', '--output', type=Path, required=True, help='new bag folder')
    make.add_argument('--storage', choices=tuple(STORAGE_PLUGINS), default='mcap')
    make.add_argument('--bag-version', type=int, choices=BAG_VERSIONS, default=9,
                      help='rosbag2 metadata version: 9 (Jazzy+) or 8 (Humble/Iron)')
    make.add_argument('--image-topic', default='/camera/image_raw')
    make.add_argument('--camera-info-topic', default='/camera/camera_info',
                      help="CameraInfo topic ('' for none)")
    make.add_argument('--frame-id', default='camera_optical_frame')
    make.add_argument('--encoding', choices=ENCODINGS, default='rgb8')
    make.add_argument('--format', dest='image_format', choices=IMAGE_FORMATS, default='raw',
                      help="'raw' sensor_msgs/Image, or 'jpeg' / 'png' sensor_msgs/"
                           'CompressedImage on IMAGE_TOPIC/compressed')
    make.add_argument('--jpeg-quality', type=int, default=90, help='JPEG quality 1-100')
    make.add_argument('--depth-topic', default='/camera/depth/image_raw',
                      help='16UC1 depth topic (RGB-D folders)')
    make.add_argument('--rate', type=_positive_float, default=None,
                      help='frames per second (default: the first video\'s own, else 10)')
    make.add_argument('--start-time', type=float, default=None,
                      help='stamp of the first frame, seconds since the epoch (default: now)')
    make.add_argument('--max-frames', type=_positive_int, default=None,
                      help='at most this many frames from each source')
    make.add_argument('--first-frame', type=int, default=0,
                      help='index of the first frame to use from each source')
    make.add_argument('--frame-step', type=_positive_int, default=1,
                      help='use every N-th frame')
    make.add_argument('--resize', type=_size, default=None, metavar='WxH',
                      help='resize frames, e.g. 640x360')

    info = commands.add_parser('info', help='summarise a bag')
    info.add_argument('bag', type=Path)

    play = commands.add_parser('play', help='publish a bag with its recorded timing')
    play.add_argument('bag', type=Path)
    play.add_argument('--rate', type=_positive_float, default=1.0, help='speed multiplier')
    play.add_argument('--loop', action='store_true', help='repeat until interrupted')
    play.add_argument('--remap', action='append', default=[], metavar='OLD:=NEW',
                      help='publish recorded topic OLD on NEW (repeatable)')
    play.add_argument('--topics', nargs='+', default=[], help='only play these topics')
    play.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                      help='wait up to this long for every topic to have a subscriber')
    play.add_argument('--subscribers', type=_positive_int, default=1, metavar='N',
                      help='with --wait-for-subscribers: wait for N subscribers per topic')
    play.add_argument('--wait-for-all-acked', type=float, default=5.0, metavar='SECONDS',
                      help='after the last message, wait up to this long until subscribers '
                           'acknowledged every reliable message (0 = exit at once; default 5)')

    record = commands.add_parser('record', help='record topics into a new bag')
    record.add_argument('topics', nargs='*', help='topics to record')
    record.add_argument('-a', '--all', action='store_true', help='record every topic')
    record.add_argument('-o', '--output', type=Path, required=True, help='new bag folder')
    record.add_argument('--storage', choices=tuple(STORAGE_PLUGINS), default='mcap')
    record.add_argument('--bag-version', type=int, choices=BAG_VERSIONS, default=9)
    record.add_argument('--duration', type=_positive_float, default=None,
                        help='stop after this many seconds')
    record.add_argument('--max-messages', type=_positive_int, default=None,
                        help='stop after this many messages (all topics together)')
    return parser


def _make(args: argparse.Namespace) -> int:
    spec = ImageBagSpec(output=args.output, image_topic=args.image_topic,
                        camera_info_topic=args.camera_info_topic, frame_id=args.frame_id,
                        rate=args.rate, start_time=args.start_time, max_frames=args.max_frames,
                        first_frame=args.first_frame, frame_step=args.frame_step,
                        resize=args.resize, encoding=args.encoding, storage=args.storage,
                        version=args.bag_version, image_format=args.image_format,
                        depth_topic=args.depth_topic, jpeg_quality=args.jpeg_quality)
    written = write_image_bag(spec, args.sources)
    print(f'Wrote {written.frame_count} frames ({written.width}x{written.height}, '
          f'{written.rate:g} fps) to {written.path}')
    return 0


def _info(args: argparse.Namespace) -> int:
    print(read_bag_info(args.bag).format())
    return 0


def _init_ros(ros_arguments: Sequence[str]) -> None:
    import rclpy  # noqa: PLC0415 (only the ROS subcommands need rclpy)

    # Only what follows --ros-args reaches rcl: our own OLD:=NEW remaps are not rcl rules.
    rclpy.init(args=['deeplab-ros-bag', '--ros-args', *ros_arguments] if ros_arguments
               else ['deeplab-ros-bag'])


def _shutdown_ros(node: object) -> None:
    import rclpy  # noqa: PLC0415

    node.destroy_node()
    if rclpy.ok():
        rclpy.shutdown()


def _play(args: argparse.Namespace) -> int:
    from rclpy.node import Node  # noqa: PLC0415

    from deeplab_ros.bagtools.player import BagPlayer, parse_remaps  # noqa: PLC0415

    remaps = parse_remaps(args.remap)
    _init_ros(args.ros_arguments)
    node = Node('deeplab_bag_player')
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, loop=args.loop, remaps=remaps,
                           topics=args.topics)
        if args.wait_for_subscribers > 0 and not player.wait_for_subscribers(
                args.wait_for_subscribers, count=args.subscribers):
            print(f'Not every topic had {args.subscribers} subscriber(s) after '
                  f'{args.wait_for_subscribers:g} s; playing anyway.', file=sys.stderr)
        stats = player.play()
        if args.wait_for_all_acked > 0 and not stats.interrupted and \
                not player.wait_for_all_acked(args.wait_for_all_acked):
            print(f'Some messages were not acknowledged by every subscriber after '
                  f'{args.wait_for_all_acked:g} s.', file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    finally:
        _shutdown_ros(node)
    print(f'Published {stats.total} messages in {stats.wall_duration_s:.2f} s: '
          + ', '.join(f'{topic} {count}' for topic, count in stats.published.items()))
    return 0


def _record(args: argparse.Namespace) -> int:
    import rclpy  # noqa: PLC0415
    from rclpy.executors import ExternalShutdownException  # noqa: PLC0415
    from rclpy.node import Node  # noqa: PLC0415

    from deeplab_ros.bagtools.recorder import BagRecorder  # noqa: PLC0415

    if not args.topics and not args.all:
        raise BagError('Name the topics to record, or pass --all.')
    _init_ros(args.ros_arguments)
    node = Node('deeplab_bag_recorder')
    recorder = BagRecorder(node, args.output, args.topics, all_topics=args.all,
                           storage=args.storage, version=args.bag_version,
                           max_messages=args.max_messages)
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while rclpy.ok() and not recorder.done.is_set():
            rclpy.spin_once(node, timeout_sec=0.05)
            if deadline is not None and time.monotonic() >= deadline:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stats = recorder.close()
        _shutdown_ros(node)
    print(f'Recorded {stats.total} messages to {stats.path}: '
          + ', '.join(f'{topic} {count}' for topic, count in sorted(stats.counts.items())))
    for topic, why in stats.skipped_topics.items():
        print(f'Skipped {topic}: {why}', file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deeplab-ros-bag``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_arguments: list[str] = []
    if '--ros-args' in argv:
        split = argv.index('--ros-args')
        argv, ros_arguments = argv[:split], argv[split + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.ros_arguments = ros_arguments
    handlers = {'make': _make, 'info': _info, 'play': _play, 'record': _record}
    try:
        return handlers[args.command](args)
    except TOOL_FAILURES as error:
        return report_failure(f'{parser.prog} {args.command}', error, status=2)


if __name__ == '__main__':
    sys.exit(main())
