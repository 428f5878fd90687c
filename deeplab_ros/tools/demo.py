"""``deeplab-ros-demo`` (``make demo``): the segmentation node on a bag of real footage.

Makes a bag from the shared videos (pedestrians from vtest.avi, then highway traffic), starts
the node through its normal entry point with config/segment.yaml, configures and activates
it over its lifecycle services, plays the bag into it and records its outputs. Leaves in one
folder (default ./demo_output):

- ``overlay.mp4``: the overlay stream as a video;
- ``contact_sheet.png``: input | overlay pairs with the classes found, and a legend naming
  the colour of each class shown;
- ``input_bag/`` and ``output_bag/``: the bags (``deeplab-ros-bag info`` summarises them);
- ``summary.md`` and ``frames.csv``: frames in/out, throughput, latency p50/p99, classes per
  frame; ``node.log``: what the node printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import csv
from dataclasses import dataclass
import os
from pathlib import Path
import shutil
import sys

import cv2
import numpy as np

from rosbags.rosbag2 import Reader

from deeplab_ros.bagtools.info import read_messages
from deeplab_ros.bagtools.message_definitions import MessageDefinitionError
from deeplab_ros.bagtools.writer import add_typed_connection, CAMERA_INFO_TYPE, IMAGE_TYPE
from deeplab_ros.bagtools.writer import ImageBagSpec, open_writer, write_image_bag
from deeplab_ros.core.inference.backends import BACKENDS
from deeplab_ros.core.weights.locations import shared_path
from deeplab_ros.ros.dds_profile import large_image_dds_env
from deeplab_ros.ros.image_codec import decode_image_msg, decode_mono8_msg
from deeplab_ros.ros.stamps import header_key
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES
from deeplab_ros.tools.model_args import BACKEND_HELP

PEDESTRIANS = 'data/video/vtest.avi'
TRAFFIC = 'data/video/traffic_frames.mp4'
IMAGE_TOPIC = '/camera/image_raw'
CAMERA_INFO_TOPIC = '/camera/camera_info'
GENERATED = ('input_bag', 'output_bag', 'overlay.mp4', 'contact_sheet.png', 'summary.md',
             'frames.csv', 'node.log')
VIDEO_SIZE = (960, 576)
TILE_WIDTH = 360
SWATCH = 26  # legend swatch side (pixels)


@dataclass(frozen=True)
class FrameReport:
    """One input frame and what the node made of it."""

    index: int
    source: str
    stamp: tuple[int, int, str]
    processed: bool
    latency_ms: float | None
    classes: tuple[str, ...]
    received_s: float | None = None  # wall time its labels arrived


def class_names_from_label_info(output_bag: Path) -> dict[int, str]:
    """``{class id: name}`` from the recorded segmentation/label_info ({} if absent)."""
    try:
        messages = read_messages(output_bag, '/segmentation/label_info')
    except (KeyError, MessageDefinitionError):  # no such topic or message type
        return {}
    if not messages:
        return {}
    return {int(c.class_id): c.class_name for c in messages[-1][1].class_map}


def classification_names(message: object, names: dict[int, str]) -> tuple[str, ...]:
    """Class names of a vision_msgs/Classification (ids given as numbers or as names)."""
    found = []
    for hypothesis in message.results:
        class_id = str(hypothesis.class_id)
        found.append(names.get(int(class_id), class_id) if class_id.isdigit() else class_id)
    return tuple(found)


def build_input_bag(output: Path, *, pedestrian_frames: int, traffic_frames: int,
                    rate: float, resize_width: int | None, pedestrian_first: int = 0,
                    pedestrian_step: int = 1) -> int:
    """Write the demo's input bag (pedestrians, then traffic); return the frame count.

    The pedestrian frames are vtest.avi's ``pedestrian_first``, ``+ pedestrian_step``, ...
    """
    total = 0
    parts = [(PEDESTRIANS, pedestrian_frames, pedestrian_first, pedestrian_step),
             (TRAFFIC, traffic_frames, 0, 1)]
    # One bag from two sources of different sizes: each part is written on its own, its
    # stamps continuing where the previous part ended, then the parts are concatenated.
    staging = output.parent / f'.{output.name}_parts'
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    start = 1_700_000_000.0
    part_bags = []
    for number, (video, frames, first, step) in enumerate(parts):
        if frames <= 0:
            continue
        path = shared_path(video, hint='The demo plays the shared footage.')
        resize = None
        if resize_width:
            capture = cv2.VideoCapture(str(path))
            width = capture.get(cv2.CAP_PROP_FRAME_WIDTH)
            height = capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
            capture.release()
            resize = (resize_width, int(round(height * resize_width / width / 2)) * 2)
        spec = ImageBagSpec(output=staging / f'part{number}', image_topic=IMAGE_TOPIC,
                            camera_info_topic=CAMERA_INFO_TOPIC, frame_id=Path(video).stem,
                            rate=rate, start_time=start, max_frames=frames, first_frame=first,
                            frame_step=step, resize=resize)
        written = write_image_bag(spec, path)
        part_bags.append(written.path)
        total += written.frame_count
        start += written.frame_count / rate
    writer = open_writer(output)
    writer.open()
    try:
        connections = {IMAGE_TOPIC: add_typed_connection(writer, IMAGE_TOPIC, IMAGE_TYPE),
                       CAMERA_INFO_TOPIC: add_typed_connection(writer, CAMERA_INFO_TOPIC,
                                                               CAMERA_INFO_TYPE)}
        for part in part_bags:
            reader = Reader(part)
            reader.open()
            try:
                for connection, timestamp, data in reader.messages():
                    writer.write(connections[connection.topic], timestamp, data)
            finally:
                reader.close()
    finally:
        writer.close()
        shutil.rmtree(staging, ignore_errors=True)
    return total


def analyse(input_bag: Path, output_bag: Path,
            publish_times: dict[tuple[int, int, str], float]) -> list[FrameReport]:
    """Match every input frame with the node's outputs for it (by header)."""
    names = class_names_from_label_info(output_bag)
    labels = {header_key(m.header): t
              for t, m in read_messages(output_bag, '/segmentation/labels')}
    classes = {header_key(m.header): classification_names(m, names)
               for _, m in read_messages(output_bag, '/segmentation/classes')}
    reports = []
    for index, (_, image) in enumerate(read_messages(input_bag, IMAGE_TOPIC)):
        stamp = header_key(image.header)
        received_ns = labels.get(stamp)
        published = publish_times.get(stamp)
        latency = None
        if received_ns is not None and published is not None:
            latency = (received_ns / 1e9 - published) * 1000.0
        reports.append(FrameReport(index=index, source=image.header.frame_id, stamp=stamp,
                                   processed=received_ns is not None, latency_ms=latency,
                                   classes=classes.get(stamp, ()),
                                   received_s=None if received_ns is None
                                   else received_ns / 1e9))
    return reports


def write_overlay_video(output_bag: Path, path: Path, fps: float) -> int:
    """overlay.mp4 from the recorded overlays (letterboxed to one size); frames written."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, VIDEO_SIZE)
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {path} with the mp4v codec.')
    count = 0
    try:
        for _, message in read_messages(output_bag, '/segmentation/overlay'):
            writer.write(cv2.cvtColor(_letterbox(decode_image_msg(message), VIDEO_SIZE),
                                      cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        writer.release()
    return count


def _letterbox(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    resized = cv2.resize(rgb, (int(rgb.shape[1] * scale), int(rgb.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top = (height - resized.shape[0]) // 2
    left = (width - resized.shape[1]) // 2
    canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return canvas


def _tile(rgb: np.ndarray) -> np.ndarray:
    height = int(round(rgb.shape[0] * TILE_WIDTH / rgb.shape[1]))
    return cv2.resize(rgb, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)


def legend_entries(output_bag: Path, reports: Sequence[FrameReport]
                   ) -> list[tuple[str, tuple[int, int, int]]]:
    """(class name, RGB colour) of every class named in the captions of ``reports``.

    The colour is read where the recorded label image has that class in the recorded
    ``segmentation/color`` image of the same frame: what the overlay was tinted with.
    """
    names = class_names_from_label_info(output_bag)
    ids = {name: class_id for class_id, name in names.items()}
    wanted = {r.stamp: {ids[n] for n in r.classes if n in ids} for r in reports}
    labels = {header_key(m.header): decode_mono8_msg(m)
              for _, m in read_messages(output_bag, '/segmentation/labels')
              if header_key(m.header) in wanted}
    colours: dict[int, tuple[int, int, int]] = {}
    for _, message in read_messages(output_bag, '/segmentation/color'):
        stamp = header_key(message.header)
        if stamp not in wanted or stamp not in labels:
            continue
        colour_image = decode_image_msg(message)
        for class_id in wanted[stamp] - colours.keys():
            where = np.argwhere(labels[stamp] == class_id)
            if len(where):
                row, column = where[0]
                colours[class_id] = tuple(int(v) for v in colour_image[row, column])
    return [(names[class_id], colours[class_id]) for class_id in sorted(colours)]


def _legend(entries: list[tuple[str, tuple[int, int, int]]], width: int) -> np.ndarray:
    """White band of colour swatches, each followed by its class name, wrapped to ``width``."""
    font, scale, thickness, gap = cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1, 24
    row_height = SWATCH + 14
    rows: list[list[tuple[int, str, tuple[int, int, int]]]] = [[]]
    x = 8
    for name, colour in entries:
        text_width = cv2.getTextSize(name, font, scale, thickness)[0][0]
        item_width = SWATCH + 8 + text_width + gap
        if x + item_width > width and rows[-1]:
            rows.append([])
            x = 8
        rows[-1].append((x, name, colour))
        x += item_width
    band = np.full((row_height * len(rows) + 12, width, 3), 255, np.uint8)
    for number, row in enumerate(rows):
        top = 6 + number * row_height
        for left, name, colour in row:
            cv2.rectangle(band, (left - 1, top - 1), (left + SWATCH, top + SWATCH), (0, 0, 0), 1)
            band[top:top + SWATCH, left:left + SWATCH] = colour
            cv2.putText(band, name, (left + SWATCH + 8, top + SWATCH - 6), font, scale,
                        (0, 0, 0), thickness, cv2.LINE_AA)
    return band


def write_contact_sheet(input_bag: Path, output_bag: Path, reports: list[FrameReport],
                        path: Path, pairs: int = 8) -> list[FrameReport]:
    """A grid of input | overlay pairs (two pairs per row) captioned with the classes.

    Below it, a legend names the colour of every class in the captions
    (:func:`legend_entries`). Returns the frames shown.
    """
    processed = [r for r in reports if r.processed]
    if not processed:
        raise RuntimeError('The node processed no frame: nothing to put on the contact sheet.')
    by_source: dict[str, list[FrameReport]] = {}
    for report in processed:
        by_source.setdefault(report.source, []).append(report)
    chosen: list[FrameReport] = []
    share = max(1, pairs // len(by_source))
    for source_reports in by_source.values():
        picks = np.linspace(0, len(source_reports) - 1, min(share, len(source_reports)))
        chosen.extend(source_reports[int(round(i))] for i in picks)
    wanted = {r.stamp: r for r in chosen}
    inputs = {header_key(m.header): decode_image_msg(m)
              for _, m in read_messages(input_bag, IMAGE_TOPIC)
              if header_key(m.header) in wanted}
    overlays = {header_key(m.header): decode_image_msg(m)
                for _, m in read_messages(output_bag, '/segmentation/overlay')
                if header_key(m.header) in wanted}
    cells, shown = [], []
    for report in chosen:
        if report.stamp not in inputs or report.stamp not in overlays:
            continue
        shown.append(report)
        pair = np.concatenate([_tile(inputs[report.stamp]), _tile(overlays[report.stamp])],
                              axis=1)
        caption = np.full((44, pair.shape[1], 3), 255, np.uint8)
        text = f'{report.source} #{report.index}: ' + (', '.join(report.classes) or 'none')
        cv2.putText(caption, text[:70], (8, 29), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2,
                    cv2.LINE_AA)
        cells.append(np.concatenate([pair, caption], axis=0))
    cell_height = max(c.shape[0] for c in cells)
    cells = [np.pad(c, ((0, cell_height - c.shape[0]), (0, 0), (0, 0)), constant_values=255)
             for c in cells]
    if len(cells) % 2:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.concatenate([cells[i], np.full((cell_height, 12, 3), 255, np.uint8),
                            cells[i + 1]], axis=1) for i in range(0, len(cells), 2)]
    sheet = np.concatenate(rows, axis=0)
    entries = legend_entries(output_bag, shown)
    if entries:
        sheet = np.concatenate([sheet, _legend(entries, sheet.shape[1])], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return shown


def write_tables(reports: list[FrameReport], directory: Path, *, wall_s: float,
                 parameters: dict[str, object]) -> str:
    """frames.csv (one row per input frame) and summary.md; returns the summary text."""
    with (directory / 'frames.csv').open('w', newline='') as stream:
        writer = csv.writer(stream)
        writer.writerow(['index', 'source', 'stamp_sec', 'stamp_nanosec', 'processed',
                         'latency_ms', 'classes'])
        for r in reports:
            writer.writerow([r.index, r.source, r.stamp[0], r.stamp[1], int(r.processed),
                             '' if r.latency_ms is None else f'{r.latency_ms:.1f}',
                             ' '.join(r.classes)])
    processed = [r for r in reports if r.processed]
    latencies = np.array([r.latency_ms for r in processed if r.latency_ms is not None])
    lines = ['# deeplab_ros demo', '',
             'Node parameters: ' + ', '.join(f'`{k}={v}`' for k, v in parameters.items()), '',
             '| source | frames in | frames out | classes (frames present) |',
             '| --- | --- | --- | --- |']
    for source in dict.fromkeys(r.source for r in reports):
        part = [r for r in reports if r.source == source]
        done = [r for r in part if r.processed]
        counts: dict[str, int] = {}
        for report in done:
            for name in report.classes:
                counts[name] = counts.get(name, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        summary = ', '.join(f'{name} ({count})' for name, count in ranked)
        lines.append(f'| {source} | {len(part)} | {len(done)} | {summary} |')
    lines += ['', f'- frames in: {len(reports)}, frames out: {len(processed)} '
              '(the node drops frames that arrive while it is busy)',
              f'- whole run (node start-up, model loading, playback): {wall_s:.1f} s']
    received = sorted(r.received_s for r in processed if r.received_s is not None)
    if len(received) > 1:
        lines.append(f'- output rate while playing: '
                     f'{(len(received) - 1) / (received[-1] - received[0]):.2f} frames/s')
    if latencies.size:
        lines.append(f'- latency publish -> labels received: p50 '
                     f'{np.percentile(latencies, 50):.0f} ms, p99 '
                     f'{np.percentile(latencies, 99):.0f} ms')
    lines += ['', 'Per-frame classes: frames.csv.', '']
    text = '\n'.join(lines)
    (directory / 'summary.md').write_text(text)
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog='deeplab-ros-demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', type=Path, default=Path('demo_output'),
                        help='folder for the results (default ./demo_output)')
    parser.add_argument('--pedestrian-frames', type=int, default=80)
    parser.add_argument('--traffic-frames', type=int, default=20)
    parser.add_argument('--rate', type=float, default=4.0,
                        help='frames per second of the bag (the node drops what it cannot '
                             'keep up with)')
    parser.add_argument('--resize-width', type=int, default=0,
                        help='resize the footage to this width (0 = keep)')
    parser.add_argument('--input-size', type=int, default=0,
                        help='network input side (0 = the params file / checkpoint default: '
                             '385 for the default ADE20K model on the CPU)')
    parser.add_argument('--device', default='', help='device override (default: params file)')
    parser.add_argument('--backend', default='', choices=('',) + BACKENDS,
                        help='backend override (default: params file); ' + BACKEND_HELP)
    parser.add_argument('--params-file', type=Path, default=None,
                        help='node parameters file (default: config/segment.yaml)')
    parser.add_argument('--no-fastdds-profile', action='store_true',
                        help='do not apply config/fastdds_large_images.xml to the node and '
                             'this process')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deeplab-ros-demo``."""
    args = build_parser().parse_args(argv)
    if not args.no_fastdds_profile:
        large_image_dds_env(os.environ)
    # rclpy is imported only now, after the DDS profile is in the environment.
    from deeplab_ros.bagtools.pipeline import run_bag_through_node  # noqa: PLC0415

    directory = args.output.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name in GENERATED:  # only what an earlier demo run left here
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    try:
        frames = build_input_bag(directory / 'input_bag',
                                 pedestrian_frames=args.pedestrian_frames,
                                 traffic_frames=args.traffic_frames, rate=args.rate,
                                 resize_width=args.resize_width or None)
    except TOOL_FAILURES as error:
        return report_failure('deeplab-ros-demo: cannot make the input bag', error, status=2)
    print(f'Input bag: {frames} frames at {args.rate:g} fps -> {directory / "input_bag"}')
    parameters: dict[str, object] = {'publish_overlay': True, 'publish_color': True}
    if args.input_size:
        parameters['input_size'] = args.input_size
    if args.device:
        parameters['device'] = args.device
    if args.backend:
        parameters['backend'] = args.backend
    run = run_bag_through_node(directory / 'input_bag', directory / 'output_bag',
                               params_file=args.params_file, parameters=parameters,
                               log_path=directory / 'node.log')
    if run.node_exit_code != 0:
        print(f'deeplab-ros-demo: the node exited with {run.node_exit_code}; see '
              f'{directory / "node.log"}', file=sys.stderr)
    reports = analyse(directory / 'input_bag', directory / 'output_bag', run.publish_times)
    if not any(r.processed for r in reports):
        print(f'deeplab-ros-demo: the node produced no labels; see {directory / "node.log"}',
              file=sys.stderr)
        return 1
    video_frames = write_overlay_video(directory / 'output_bag', directory / 'overlay.mp4',
                                       fps=max(1.0, args.rate))
    write_contact_sheet(directory / 'input_bag', directory / 'output_bag', reports,
                        directory / 'contact_sheet.png')
    summary = write_tables(reports, directory, wall_s=run.wall_s, parameters=parameters)
    print(summary)
    print(f'overlay video: {video_frames} frames')
    print(f'Demo output: {directory}')
    return 0 if run.node_exit_code == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
