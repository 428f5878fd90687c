"""Publishing a processed frame: each camera's outputs, computed only where they are wanted.

For every frame of a batch the worker asks :meth:`FrameOutputs.wanted` which outputs that
camera must publish (those published always, plus those subscribed and enabled), asks the
segmenter only for the extras they need (:func:`segmenter_extras`), then hands the result to
:meth:`FrameOutputs.publish`. That runs the output stages in turn; each stage owns a group of
the outputs of :mod:`deeplab_ros.ros.outputs` and publishes the wanted ones:

- :class:`ImageStage`: labels, colour, overlay, confidence and the class presence;
- :class:`CameraInfoStage`: the camera_info of the frame, at the labels' size;
- :class:`AutowareMaskStage`: Autoware's run-length mask (``autoware_mask``);
- :class:`SpatialStage`: detections, labelled points and 3D detections, with depth matched
  to the frame, and the regions image numbering the detections' pixels.

Images go out through :func:`publish_image`, which also encodes their ``/compressed`` twin
when that is wanted.

A new output is a row in the outputs table and a few lines in the stage it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from deeplab_ros.core.inference.segmenter import SegmentationResult
from deeplab_ros.core.labels import LabelSet
from deeplab_ros.core.spatial.regions import region_image
from deeplab_ros.ros.autoware_mask import autoware_mask_message
from deeplab_ros.ros.camera_stream import CameraStream, PendingFrame
from deeplab_ros.ros.depth_input import depth_for_frame, DepthInputError
from deeplab_ros.ros.image_codec import (
    compress_image, encode_16uc1, encode_mono8, encode_rgb8)
from deeplab_ros.ros.messages import camera_info_for_frame, classification
from deeplab_ros.ros.outputs import ALWAYS, COMPRESSED_TWIN, OUTPUT_BY_NAME, OUTPUTS
from deeplab_ros.ros.parameters import LiveSettings
from deeplab_ros.ros.spatial_outputs import (
    frame_regions, SPATIAL_OUTPUTS, spatial_messages, SpatialSettings)
from deeplab_ros.ros.stamps import stamp_ns
from deeplab_ros.streaming.depth_pairing import DepthPairing
from deeplab_ros.streaming.statistics import NodeStatistics

#: Outputs that switch off with a live ``publish_<name>`` parameter.
SWITCHABLE = ('color', 'overlay', 'confidence')
#: Outputs that need the segmenter's confidence image.
NEED_CONFIDENCE = frozenset(('confidence', *SPATIAL_OUTPUTS))
#: Image outputs: ROS encoding and encoder of the raw message.
IMAGE_ENCODINGS: dict[str, tuple[str, Callable[[np.ndarray, Any], Any]]] = {
    'labels': ('mono8', encode_mono8), 'color': ('rgb8', encode_rgb8),
    'overlay': ('rgb8', encode_rgb8), 'confidence': ('mono8', encode_mono8),
    'regions': ('16UC1', encode_16uc1)}
#: Outputs made of the frame's regions image.
REGION_IMAGE = frozenset(('regions', 'regions/compressed'))


def _bases(names: Iterable[str]) -> frozenset[str]:
    """``names`` with each compressed twin replaced by the image it compresses."""
    return frozenset(OUTPUT_BY_NAME[name].compresses or name for name in names)


def segmenter_extras(wanted: Iterable[frozenset[str]]) -> dict[str, bool]:
    """The segmenter's optional results a batch needs, for the frames' wanted outputs."""
    union = _bases(frozenset().union(*wanted))
    return {'color': 'color' in union, 'overlay': 'overlay' in union,
            'confidence': bool(union & NEED_CONFIDENCE)}


def publish_image(camera: CameraStream, name: str, pixels: np.ndarray, header: Any,
                  wanted: frozenset[str], jpeg_quality: int) -> None:
    """Publish image output ``name`` and its ``/compressed`` twin, each if it is wanted."""
    encoding, encode = IMAGE_ENCODINGS[name]
    if name in wanted:
        camera.publish(name, encode(pixels, header))
    twin = COMPRESSED_TWIN.get(name)
    if twin is not None and twin.name in wanted:
        camera.publish(twin.name, compress_image(pixels, encoding, header, twin.codec,
                                                 jpeg_quality=jpeg_quality))


@dataclass
class FrameReporting:
    """How stages count and report problems: the node's counters, logger and throttle."""

    stats: NodeStatistics
    logger: Any
    resolve_topic: Callable[[str], str]
    #: ``(counter, what, topic, error, problem)``: count a bad input and log it, throttled.
    report_bad_input: Callable[..., None]
    throttle_s: float


class OutputStage(Protocol):
    """A group of outputs published from one frame's result."""

    def publish(self, camera: CameraStream, frame: PendingFrame, result: SegmentationResult,
                wanted: frozenset[str]) -> None:
        """Publish the outputs of this stage that are in ``wanted``."""


@dataclass
class ImageStage:
    """Labels (always), colour, overlay and confidence images, and the class presence."""

    labels: LabelSet
    live: LiveSettings

    def publish(self, camera: CameraStream, frame: PendingFrame, result: SegmentationResult,
                wanted: frozenset[str]) -> None:
        """Publish the label image, the wanted extras and the classes present."""
        header, quality = frame.header, self.live.jpeg_quality
        for output in ('labels', 'color', 'overlay', 'confidence'):
            image = getattr(result, output)
            if image is not None:
                publish_image(camera, output, image, header, wanted, quality)
        camera.publish('classes', classification(
            header, result.class_fractions, self.labels, self.live.presence_min_fraction))


@dataclass
class CameraInfoStage:
    """The frame's camera_info with the frame's header, once one was received."""

    reporting: FrameReporting

    def publish(self, camera: CameraStream, frame: PendingFrame, result: SegmentationResult,
                wanted: frozenset[str]) -> None:
        """Republish the camera_info that goes with the frame, if it fits the labels."""
        if camera.camera_info is None:
            return
        height, width = result.labels.shape[:2]
        received = camera.camera_info_for(frame.header)
        info = camera_info_for_frame(received, frame.header, width=width, height=height)
        if info is None:
            stats = self.reporting.stats
            stats.count('camera_info_mismatches')
            topic = self.reporting.resolve_topic(camera.topic('camera_info'))
            self.reporting.logger.warning(
                f'camera_info on {topic} is for {received.width}x{received.height} images, '
                f'the frame is {width}x{height}: not republished '
                f'({stats.camera_info_mismatches} so far)',
                throttle_duration_sec=self.reporting.throttle_s)
            return
        camera.publish('camera_info', info)


@dataclass
class AutowareMaskStage:
    """``mask_rle``: the labels in Autoware's classes and run-length format."""

    table: np.ndarray  # model class id -> Autoware class value

    def publish(self, camera: CameraStream, frame: PendingFrame, result: SegmentationResult,
                wanted: frozenset[str]) -> None:
        """Publish the run-length mask when it is subscribed."""
        if 'mask_rle' in wanted:
            camera.publish('mask_rle', autoware_mask_message(
                frame.header, result.labels, self.table))


@dataclass
class SpatialStage:
    """Detections, labelled points, 3D detections and the regions image.

    Depth is matched only for 3D outputs; the regions are found once per frame for the
    detections and the regions image, so a pixel's number is its detection's ``id`` + 1.
    """

    labels: LabelSet
    live: LiveSettings
    reporting: FrameReporting
    settings: SpatialSettings
    pairing: DepthPairing
    #: Class id -> the cloud's ``class_id`` value (Autoware's classes with autoware_mask).
    class_id_lut: np.ndarray | None = None

    def publish(self, camera: CameraStream, frame: PendingFrame, result: SegmentationResult,
                wanted: frozenset[str]) -> None:
        """Match the frame's depth when needed and publish the wanted spatial outputs."""
        spatial = [name for name in SPATIAL_OUTPUTS if name in wanted]
        image = wanted & REGION_IMAGE
        if not spatial and not image:
            return
        depth = None
        if camera.depth is not None and {'points', 'detections_3d'} & wanted:
            depth = self._depth(camera, frame, result.labels.shape)
        settings, regions = self.settings, None
        if image or 'detections' in wanted or ('detections_3d' in wanted and depth is not None):
            regions = frame_regions(result.labels, result.confidence, settings)
        messages = spatial_messages(frame.header, result.labels, result.confidence, depth,
                                    self.labels.palette_lut(), settings, spatial, regions,
                                    class_id_lut=self.class_id_lut)
        for name, message in messages.items():
            camera.publish(name, message)
        if image and regions is not None:
            publish_image(camera, 'regions', region_image(regions), frame.header, wanted,
                          self.live.jpeg_quality)

    def _depth(self, camera: CameraStream, frame: PendingFrame, shape: tuple[int, ...]) -> Any:
        """The frame's depth (matched by stamp, in metres with intrinsics), or None."""
        assert camera.depth is not None
        stats, tolerance = self.reporting.stats, self.live.depth_tolerance
        stamp = stamp_ns(frame.header)
        message = self.pairing.match(camera.depth, stamp, int(tolerance * 1e9))
        if message is None:
            stats.count('depth_unmatched')
            self.reporting.logger.warning(
                f'no depth image within {tolerance:g} s of the frame stamped {stamp} ns on '
                f'{self.reporting.resolve_topic(camera.topic("depth"))} '
                f'({stats.depth_unmatched} unmatched frames so far)',
                throttle_duration_sec=self.reporting.throttle_s)
            return None
        try:
            return depth_for_frame(message, camera.camera_info, shape)
        except DepthInputError as error:
            self.reporting.report_bad_input(error.kind, 'depth input', camera.topic('depth'),
                                            error, error.problem)
            return None


class FrameOutputs:
    """Every output stage of a configured node, and what each camera wants of a frame."""

    def __init__(self, labels: LabelSet, live: LiveSettings, reporting: FrameReporting,
                 autoware_table: np.ndarray | None) -> None:
        self.live = live
        self.spatial = SpatialStage(labels, live, reporting, SpatialSettings.from_live(
            live, labels), DepthPairing(), class_id_lut=autoware_table)
        self.stages: list[OutputStage] = [ImageStage(labels, live), CameraInfoStage(reporting)]
        if autoware_table is not None:
            self.stages.append(AutowareMaskStage(autoware_table))
        self.stages.append(self.spatial)

    def update_spatial_settings(self, settings: SpatialSettings) -> None:
        """Use new spatial settings (live parameters resolved to class ids) from now on."""
        self.spatial.settings = settings

    def wanted(self, camera: CameraStream) -> frozenset[str]:
        """The outputs ``camera`` publishes for its next frame.

        The ``always`` ones, and the others while subscribed (and, for colour, overlay and
        confidence and their compressed twins, enabled by their ``publish_*`` parameter).
        """
        wanted = set()
        for output in OUTPUTS:
            if output.name not in camera.publishers:
                continue
            base = output.compresses or output.name
            if output.when == ALWAYS:
                wanted.add(output.name)
            elif (base not in SWITCHABLE or getattr(self.live, f'publish_{base}')) \
                    and camera.subscribed(output.name):
                wanted.add(output.name)
        return frozenset(wanted)

    def publish(self, camera: CameraStream, frame: PendingFrame, result: SegmentationResult,
                wanted: frozenset[str]) -> None:
        """Publish every wanted output of one frame, stage by stage."""
        for stage in self.stages:
            stage.publish(camera, frame, result, wanted)
