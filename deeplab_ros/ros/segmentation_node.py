"""The segmentation lifecycle node: camera images in; labels, overlays and class presence out.

    ros2 run deeplab_ros segmentation_node --ros-args -r image:=/camera/image_raw
    ros2 lifecycle set /deeplab_segmentation configure && ...  activate

Per processed frame (all with the input frame's exact header): ``segmentation/labels``
(mono8, input resolution), ``segmentation/color`` and ``segmentation/overlay`` (rgb8, when
subscribed), ``segmentation/confidence`` (mono8, when enabled and subscribed),
``segmentation/classes`` (vision_msgs/Classification) and ``segmentation/camera_info`` (when
camera_info arrives). ``segmentation/label_info`` (vision_msgs/LabelInfo) is latched.
When subscribed: ``segmentation/detections`` (vision_msgs/Detection2DArray, one per connected
region of a class) and, with ``use_depth``, ``segmentation/points`` (labelled PointCloud2) and
``segmentation/detections_3d`` (vision_msgs/Detection3DArray).

Frames are never queued: each camera keeps only its newest frame, a worker thread infers the
newest frames of all cameras as one batch, at most ``target_rate`` times a second, and
overwritten frames are counted as skipped (:mod:`deeplab_ros.streaming.frame_scheduler`).
The executor only receives frames and serves parameter and lifecycle services.
"""

from __future__ import annotations

from collections import deque
import copy
import ctypes
from dataclasses import dataclass, field
import functools
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from vision_msgs.msg import Classification, Detection2DArray, Detection3DArray, LabelInfo

from deeplab_ros.core.errors import ConfigurationError, InputError
from deeplab_ros.ros import parameters as params
from deeplab_ros.ros.depth_input import (
    check_depth_message, depth_for_frame, DepthInputError, stamp_ns)
from deeplab_ros.ros.image_codec import (
    decode_compressed_image_msg, decode_image_msg, encode_mono8, encode_rgb8)
from deeplab_ros.ros.messages import camera_info_for_frame, classification, \
    diagnostic_array, label_info
from deeplab_ros.ros.spatial_outputs import (
    resolve_classes, SPATIAL_OUTPUTS, spatial_messages, SpatialSettings)
from deeplab_ros.streaming.frame_scheduler import NewestFrameScheduler
from deeplab_ros.streaming.stamp_matcher import StampMatcher
from deeplab_ros.streaming.statistics import BAD_INPUT_WINDOW_S, NodeStatistics

NODE_NAME = 'deeplab_segmentation'
#: A lifecycle transition callback of the node.
Transition = Callable[[Any, LifecycleState], TransitionCallbackReturn]
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
ERROR_THROTTLE_SECONDS = 5.0
#: Longest wait (s) after inference for a frame's depth image that has not arrived yet.
DEPTH_WAIT_SECONDS = 0.2
#: How long teardown waits for the inference worker to finish its batch (seconds).
WORKER_JOIN_TIMEOUT_S = 30.0
#: An active camera that sent no image for this long turns /diagnostics to WARN (seconds).
NO_IMAGE_WARN_S = 5.0
#: Per-frame outputs: (name under segmentation/, message type).
OUTPUTS = (('labels', Image), ('color', Image), ('overlay', Image), ('confidence', Image),
           ('classes', Classification), ('camera_info', CameraInfo))


def own_qos(template: QoSProfile) -> QoSProfile:
    """Return a copy of ``template`` for one endpoint to own.

    rclpy applies QoS override parameters to the profile passed in, in place, so a shared one
    would carry an override of one topic to every other endpoint created with it (and to
    rclpy's module-level presets).
    """
    return copy.copy(template)


class WorkerStuckError(RuntimeError):
    """The inference worker did not stop in time; what it uses was left in place."""


@dataclass
class PendingFrame:
    """The newest decoded frame of a camera, waiting for inference."""

    header: Header
    rgb: np.ndarray | None   # None until ``compressed`` is decoded (by the worker)
    received: float  # time.monotonic() at receipt
    compressed: CompressedImage | None = None


@dataclass(eq=False)  # hashable by identity: the frame scheduler's key
class CameraStream:
    """One camera: its topics, publishers and subscriptions."""

    name: str
    prefix: str
    publishers: dict[str, Any] = field(default_factory=dict)
    subscriptions: list[Any] = field(default_factory=list)
    camera_info: CameraInfo | None = None
    #: The last few camera_info messages: a frame takes the one with its own stamp if any.
    recent_camera_info: deque = field(default_factory=lambda: deque(maxlen=8))
    depth: StampMatcher[Image] | None = None
    last_received: float = 0.0  # time.monotonic() of the newest frame (0 = none yet)

    def topic(self, suffix: str) -> str:
        """Relative topic name of this camera."""
        return f'{self.prefix}{suffix}'


def _transition(name: str, *, release_on_failure: bool = False,
                result_on_error: TransitionCallbackReturn = TransitionCallbackReturn.FAILURE
                ) -> Callable[[Transition], Transition]:
    """Guard a lifecycle transition callback.

    rclpy turns an exception raised in a transition into ERROR without logging it; a guarded
    callback logs the cause instead and returns ``result_on_error`` (FAILURE: the node stays
    in its state), releasing the model and endpoints first when ``release_on_failure``.
    """
    def wrap(method: Transition) -> Transition:
        @functools.wraps(method)
        def guarded(node: 'SegmentationNode', state: LifecycleState) -> TransitionCallbackReturn:
            try:
                return method(node, state)
            except Exception as error:  # noqa: BLE001 - rclpy would swallow it silently
                node.get_logger().error(f'{name} failed: {type(error).__name__}: {error}')
                if release_on_failure:
                    node._release()  # noqa: SLF001 - the node's own teardown
                return result_on_error
        return guarded
    return wrap


class SegmentationNode(LifecycleNode):
    """Managed node running a DeepLab segmenter on one or more camera streams."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        self._segmenter: Any = None
        self._cameras: list[CameraStream] = []
        self._worker: threading.Thread | None = None
        self._scheduler: NewestFrameScheduler[CameraStream, PendingFrame] = \
            NewestFrameScheduler(lambda: self._live.target_rate)
        self._error_lock = threading.Lock()
        self._stats = NodeStatistics()
        self._live = params.LiveSettings()
        self._diagnostics_publisher: Any = None
        self._diagnostics_timer: Any = None
        self._configured_model: dict[str, Any] = {}
        self._error_logged: dict[tuple[str, str, str], float] = {}
        self._activated_at = 0.0
        super().__init__(node_name, **kwargs)
        params.declare_parameters(self)
        self._live = params.LiveSettings.from_node(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---------------------------------------------------------------- parameters
    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        for change in changes:
            reason = params.validate(change) if change.name in params.SPEC_BY_NAME else ''
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for change in changes:
            spec = params.SPEC_BY_NAME.get(change.name)
            if spec is None:
                continue
            if spec.live:
                setattr(self._live, change.name, change.value)
            elif self._segmenter is not None:
                self.get_logger().warning(
                    f'{change.name} changed to {change.value!r}: it takes effect at the next '
                    'configure (deactivate, cleanup, configure, activate).')
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    @_transition('configure', release_on_failure=True)
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build and warm up the model, create publishers."""
        return self._configure()

    def _configure(self) -> TransitionCallbackReturn:
        from deeplab_ros.core.inference.device import resolve_device
        from deeplab_ros.core.inference.segmenter import Segmenter
        from deeplab_ros.core.labels import resolve_labels

        value = lambda name: params.value(self, name)  # noqa: E731
        logger = self.get_logger()
        device_spec = str(value('device'))
        try:
            params.check_model_parameters(self)
            device = resolve_device(device_spec)
            if device_spec == 'auto' and device.type == 'cpu':
                logger.info('device auto: CUDA is not available, running on the CPU')
            labels = resolve_labels(value('labels')) if value('labels') else None
            segmenter = Segmenter.from_checkpoint(
                value('weights'), device=device, input_size=value('input_size') or None,
                half=bool(value('half')), labels=labels, variant=value('variant') or None,
                upsample=value('upsample'), backend=str(value('backend')),
                batch_size=max(1, len(value('cameras') or [])))
            if segmenter.backend_note:
                logger.warning(segmenter.backend_note)
            segmenter.warmup()
        except ConfigurationError as error:
            where = f' (parameter {error.setting})' if error.setting else ''
            logger.error(f'configure failed{where}: {error}')
            return TransitionCallbackReturn.FAILURE
        self._segmenter = segmenter
        names = list(value('cameras') or [])
        self._cameras = [CameraStream(name, f'{name}/') for name in names] or \
            [CameraStream('', '')]
        overriding = QoSOverridingOptions.with_default_policies()
        for camera in self._cameras:
            make = self.create_lifecycle_publisher
            camera.publishers = {
                output: make(message_type, camera.topic(f'segmentation/{output}'),
                             own_qos(OUTPUT_QOS), qos_overriding_options=overriding)
                for output, message_type in OUTPUTS}
            camera.publishers['label_info'] = make(
                LabelInfo, camera.topic('segmentation/label_info'), own_qos(LATCHED_QOS))
            camera.publishers['detections'] = make(
                Detection2DArray, camera.topic('segmentation/detections'), own_qos(OUTPUT_QOS),
                qos_overriding_options=overriding)
            if value('use_depth'):
                camera.depth = StampMatcher(int(value('depth_queue_size')))
                camera.publishers['points'] = make(
                    PointCloud2, camera.topic('segmentation/points'), own_qos(OUTPUT_QOS),
                    qos_overriding_options=overriding)
                camera.publishers['detections_3d'] = make(
                    Detection3DArray, camera.topic('segmentation/detections_3d'),
                    own_qos(OUTPUT_QOS), qos_overriding_options=overriding)
        for name in ('points_classes', 'detections_ignore_classes'):
            unknown = resolve_classes(value(name), segmenter.labels)[1]
            if unknown:
                logger.warning(f'{name}: {unknown} name no class of the model; ignored')
        period = float(value('diagnostics_period'))
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        if period > 0:
            self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics)
        self._configured_model = {name: value(name) for name in params.MODEL_PARAMETERS}
        meta = segmenter.metadata
        logger.info(f'configured: {meta.variant} ({meta.source or value("weights")}), '
                    f'{meta.num_classes} classes, input {segmenter.input_size}, '
                    f'device {segmenter.device}{" fp16" if segmenter.half else ""}, '
                    f'backend {segmenter.describe_backend()}, '
                    f'cameras {[c.name or "(default)" for c in self._cameras]}')
        return TransitionCallbackReturn.SUCCESS

    @_transition('activate')
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe, publish the label info and start the inference worker."""
        result = super().on_activate(state)
        overriding = QoSOverridingOptions.with_default_policies()
        compressed = self._configured_model.get('input_transport') == 'compressed'
        for camera in self._cameras:
            if compressed:
                # image_transport's naming: the resolved (remapped) base topic + suffix.
                image = self.create_subscription(
                    CompressedImage,
                    self.resolve_topic_name(camera.topic('image')) + '/compressed',
                    lambda msg, cam=camera: self._on_compressed(cam, msg),
                    own_qos(qos_profile_sensor_data), qos_overriding_options=overriding)
            else:
                image = self.create_subscription(
                    Image, camera.topic('image'),
                    lambda msg, cam=camera: self._on_image(cam, msg),
                    own_qos(qos_profile_sensor_data), qos_overriding_options=overriding)
            camera.subscriptions = [
                image,
                self.create_subscription(
                    CameraInfo, camera.topic('camera_info'),
                    lambda msg, cam=camera: self._on_camera_info(cam, msg),
                    own_qos(qos_profile_sensor_data)),
            ]
            if camera.depth is not None:
                camera.subscriptions.append(self.create_subscription(
                    Image, camera.topic('depth'),
                    lambda msg, cam=camera: self._on_depth(cam, msg),
                    own_qos(qos_profile_sensor_data), qos_overriding_options=overriding))
            header = Header(stamp=self.get_clock().now().to_msg())
            camera.publishers['label_info'].publish(label_info(
                header, self._segmenter.labels, self._live.presence_min_fraction))
        self._scheduler.start()
        self._activated_at = time.monotonic()
        self._worker = threading.Thread(target=self._work, name='deeplab_inference',
                                        daemon=True)
        self._worker.start()
        return result

    @_transition('deactivate')
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and unsubscribe; nothing is published while inactive."""
        self._stop_worker()
        self._unsubscribe()
        return super().on_deactivate(state)

    @_transition('cleanup')
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model (and GPU memory) and the publishers."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @_transition('shutdown cleanup', result_on_error=TransitionCallbackReturn.SUCCESS)
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from any state."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after an error in a transition."""
        try:
            self._release()
        except WorkerStuckError:
            return TransitionCallbackReturn.FAILURE  # logged; cannot recover safely
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the worker and release the model and endpoints, then destroy the node.

        Raises:
            WorkerStuckError: the worker did not finish its batch; the node is left alone
                rather than destroyed under it.
        """
        self._release()
        super().destroy_node()

    def _unsubscribe(self) -> None:
        for camera in self._cameras:
            for subscription in camera.subscriptions:
                self.destroy_subscription(subscription)
            camera.subscriptions = []
            if camera.depth is not None:
                camera.depth.clear()
        self._scheduler.clear()

    def _release(self) -> None:
        """Stop the worker, then destroy what it uses: subscriptions, publishers, the model.

        Raises:
            WorkerStuckError: the worker did not stop in time; nothing it may still use was
                destroyed (the next teardown tries again).
        """
        self._stop_worker()
        self._unsubscribe()
        for camera in self._cameras:
            for publisher in camera.publishers.values():
                self.destroy_lifecycle_publisher(publisher)
            camera.publishers = {}
        self._cameras = []
        self._scheduler.reset()
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def _stop_worker(self) -> None:
        self._scheduler.stop()
        if self._worker is not None:
            self._worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
            if self._worker.is_alive():
                message = (f'the inference worker did not stop within '
                           f'{WORKER_JOIN_TIMEOUT_S:g} s (a batch is still running); the '
                           'model and publishers are kept until it does')
                self.get_logger().error(message)
                raise WorkerStuckError(message)
            self._worker = None

    # ---------------------------------------------------------------- frames in
    def _on_image(self, camera: CameraStream, message: Image) -> None:
        stats = self._stats
        stats.count('received')
        stats.input_rate.tick()
        camera.last_received = time.monotonic()
        try:
            rgb = decode_image_msg(message)
        except InputError as error:
            self._report_bad_input('bad_inputs', 'image', camera.topic('image'), error)
            return
        self._queue_frame(camera, PendingFrame(message.header, rgb, time.monotonic()))

    def _on_compressed(self, camera: CameraStream, message: CompressedImage) -> None:
        """Keep the compressed frame as it is: the worker decodes the ones it processes."""
        self._stats.count('received')
        self._stats.input_rate.tick()
        camera.last_received = time.monotonic()
        self._queue_frame(camera, PendingFrame(message.header, None, camera.last_received,
                                               compressed=message))

    def _on_depth(self, camera: CameraStream, message: Image) -> None:
        try:
            check_depth_message(message)
        except DepthInputError as error:
            self._report_bad_input(error.kind, 'depth image', camera.topic('depth'), error,
                                   error.problem)
            return
        if camera.depth is not None:
            camera.depth.add(stamp_ns(message.header), message)

    def _report_bad_input(self, counter: str, what: str, topic: str, error: Exception,
                          problem: str = '') -> None:
        """Count a bad input and say what is wrong; the node carries on.

        The error is logged at most once per ERROR_THROTTLE_SECONDS for each topic, kind of
        input and ``problem``, so different problems are each reported.
        """
        self._stats.count(counter)
        self._stats.recent_bad_inputs.tick()
        key = (topic, what, problem)
        now = time.monotonic()
        with self._error_lock:
            if now - self._error_logged.get(key, -ERROR_THROTTLE_SECONDS) < \
                    ERROR_THROTTLE_SECONDS:
                return
            self._error_logged[key] = now
        self.get_logger().error(
            f'bad {what} on {self.resolve_topic_name(topic)}: {error} '
            f'({getattr(self._stats, counter)} {counter.replace("_", " ")} so far)')

    def _queue_frame(self, camera: CameraStream, frame: PendingFrame) -> None:
        if self._scheduler.offer(camera, frame):
            self._stats.count('skipped')

    def _on_camera_info(self, camera: CameraStream, message: CameraInfo) -> None:
        camera.recent_camera_info.append(message)
        camera.camera_info = message

    # ---------------------------------------------------------------- inference
    def _work(self) -> None:
        while True:
            batch = self._scheduler.next_batch()
            if batch is None:
                return
            try:
                self._process(batch)
            except Exception as error:  # noqa: BLE001 - keep running on unexpected errors
                self.get_logger().error(f'inference failed: {type(error).__name__}: {error}',
                                        throttle_duration_sec=ERROR_THROTTLE_SECONDS)

    def _wants(self, camera: CameraStream, output: str, enabled: bool) -> bool:
        publisher = camera.publishers.get(output)
        return bool(enabled and publisher is not None
                    and publisher.get_subscription_count() > 0)

    def _decoded(self, batch: list[tuple[CameraStream, PendingFrame]]
                 ) -> list[tuple[CameraStream, PendingFrame]]:
        """The batch with compressed frames decoded; undecodable ones counted and dropped."""
        ready = []
        for camera, frame in batch:
            if frame.rgb is None and frame.compressed is not None:
                try:
                    frame.rgb = decode_compressed_image_msg(frame.compressed)
                except InputError as error:
                    self._report_bad_input('bad_inputs', 'compressed image',
                                           camera.topic('image/compressed'), error)
                    continue
                frame.compressed = None
            ready.append((camera, frame))
        return ready

    def _process(self, batch: list[tuple[CameraStream, PendingFrame]]) -> None:
        batch = self._decoded(batch)
        if not batch:
            return
        live = self._live
        wants = [{'color': self._wants(cam, 'color', live.publish_color),
                  'overlay': self._wants(cam, 'overlay', live.publish_overlay),
                  'confidence': self._wants(cam, 'confidence', live.publish_confidence),
                  'spatial': [name for name in SPATIAL_OUTPUTS if self._wants(cam, name, True)]}
                 for cam, _ in batch]
        started = time.monotonic()
        results = self._segmenter.segment_batch(
            [frame.rgb for _, frame in batch],
            color=any(w['color'] for w in wants), overlay=any(w['overlay'] for w in wants),
            confidence=any(w['confidence'] or w['spatial'] for w in wants),
            overlay_alpha=live.overlay_alpha)
        self._stats.inference.add(time.monotonic() - started)
        labels = self._segmenter.labels
        for (camera, frame), result, want in zip(batch, results, wants):
            header = frame.header
            publishers = camera.publishers
            publishers['labels'].publish(encode_mono8(result.labels, header))
            if want['color'] and result.color is not None:
                publishers['color'].publish(encode_rgb8(result.color, header))
            if want['overlay'] and result.overlay is not None:
                publishers['overlay'].publish(encode_rgb8(result.overlay, header))
            if want['confidence'] and result.confidence is not None:
                publishers['confidence'].publish(encode_mono8(result.confidence, header))
            publishers['classes'].publish(classification(
                header, result.class_fractions, labels, live.presence_min_fraction))
            if camera.camera_info is not None:
                self._publish_camera_info(camera, header, result.labels.shape)
            self._publish_spatial(camera, frame, result, want['spatial'])
            done = time.monotonic()
            self._stats.count('processed')
            self._stats.output_rate.tick(done)
            self._stats.node_latency.add(done - frame.received)
            stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
            if stamp > 0:
                now = self.get_clock().now().nanoseconds * 1e-9
                self._stats.end_to_end.add(max(0.0, now - stamp))

    def _publish_camera_info(self, camera: CameraStream, header: Header,
                             shape: tuple[int, ...]) -> None:
        received = next((info for info in reversed(camera.recent_camera_info)
                         if info.header.stamp == header.stamp), camera.camera_info)
        info = camera_info_for_frame(received, header, width=shape[1], height=shape[0])
        if info is None:
            self._stats.count('camera_info_mismatches')
            topic = self.resolve_topic_name(camera.topic('camera_info'))
            self.get_logger().warning(
                f'camera_info on {topic} is for {received.width}x{received.height} images, '
                f'the frame is {shape[1]}x{shape[0]}: not republished '
                f'({self._stats.camera_info_mismatches} so far)',
                throttle_duration_sec=ERROR_THROTTLE_SECONDS)
            return
        camera.publishers['camera_info'].publish(info)

    def _spatial_settings(self) -> SpatialSettings:
        live, labels = self._live, self._segmenter.labels
        return SpatialSettings(
            points_dense=bool(live.points_dense), points_stride=int(live.points_stride),
            points_classes=resolve_classes(live.points_classes, labels)[0],
            min_area_fraction=float(live.detections_min_area_fraction),
            ignore_classes=resolve_classes(live.detections_ignore_classes, labels)[0],
            box_percentile=float(live.detections_box_percentile))

    def _publish_spatial(self, camera: CameraStream, frame: PendingFrame, result: Any,
                         wanted: list[str]) -> None:
        """Match the frame's depth and publish the wanted spatial outputs."""
        depth = None
        # Depth is matched (and a late one waited for) only when a 3D output is subscribed.
        if camera.depth is not None and ('points' in wanted or 'detections_3d' in wanted):
            tolerance_ns = int(self._live.depth_tolerance * 1e9)
            # Wait for a late depth image, unless the depth stream has gone quiet.
            silent = camera.depth.silent_for()
            waiting = DEPTH_WAIT_SECONDS if silent is None or silent < 1.0 else 0.0
            message = camera.depth.match(stamp_ns(frame.header), tolerance_ns, wait_s=waiting)
            if message is None:
                self._stats.count('depth_unmatched')
                self.get_logger().warning(
                    f'no depth image within {self._live.depth_tolerance:g} s of the frame '
                    f'stamped {stamp_ns(frame.header)} ns on '
                    f'{self.resolve_topic_name(camera.topic("depth"))} '
                    f'({self._stats.depth_unmatched} unmatched frames so far)',
                    throttle_duration_sec=ERROR_THROTTLE_SECONDS)
            else:
                try:
                    depth = depth_for_frame(message, camera.camera_info, result.labels.shape)
                except DepthInputError as error:
                    self._report_bad_input(error.kind, 'depth input', camera.topic('depth'),
                                           error, error.problem)
        if not wanted:
            return
        messages = spatial_messages(frame.header, result.labels, result.confidence, depth,
                                    self._segmenter.labels.palette_lut(),
                                    self._spatial_settings(), wanted)
        for name, message in messages.items():
            camera.publishers[name].publish(message)

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        if self._diagnostics_publisher is None or self._segmenter is None:
            return
        stats = self._stats
        inference = stats.inference.percentiles(50, 99)
        node = stats.node_latency.percentiles(50, 99)
        end_to_end = stats.end_to_end.percentiles(50, 99)
        active = self._scheduler.running
        problems = []
        recent_bad = stats.recent_bad_inputs.recent()
        if recent_bad:
            problems.append(f'{recent_bad} bad inputs in the last {BAD_INPUT_WINDOW_S:g} s')
        if active:
            now = time.monotonic()
            silent = [camera.name or camera.topic('image') for camera in self._cameras
                      if now - (camera.last_received or self._activated_at) > NO_IMAGE_WARN_S]
            if silent:
                problems.append(f'no image for over {NO_IMAGE_WARN_S:g} s: '
                                f'{", ".join(silent)}')
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        summary = '; '.join(['active' if active else 'inactive', *problems])
        meta = self._segmenter.metadata
        values = {
            'input_rate_hz': f'{stats.input_rate.rate():.2f}',
            'output_rate_hz': f'{stats.output_rate.rate():.2f}',
            'frames_received': stats.received,
            'frames_processed': stats.processed,
            'frames_skipped': stats.skipped,
            'bad_inputs': stats.bad_inputs,
            'bad_inputs_recent': recent_bad,
            'camera_info_mismatches': stats.camera_info_mismatches,
            'inference_ms_p50': f'{inference[0]:.1f}',
            'inference_ms_p99': f'{inference[1]:.1f}',
            'node_latency_ms_p50': f'{node[0]:.1f}',
            'node_latency_ms_p99': f'{node[1]:.1f}',
            'end_to_end_ms_p50': f'{end_to_end[0]:.1f}',
            'end_to_end_ms_p99': f'{end_to_end[1]:.1f}',
            'device': str(self._segmenter.device) + (' fp16' if self._segmenter.half else ''),
            'model': meta.variant,
            'weights': meta.source,
            'input_size': self._segmenter.input_size,
            'cameras': ','.join(c.name or '(default)' for c in self._cameras),
            'backend': self._segmenter.describe_backend(),
            'bad_depth': stats.bad_depth,
            'bad_camera_info': stats.bad_camera_info,
            'depth_unmatched': stats.depth_unmatched,
        }
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_publisher.publish(diagnostic_array(
            header, self.diagnostic_name(), str(self._segmenter.device), level,
            summary, values))

    def diagnostic_name(self) -> str:
        """The status name on /diagnostics, unique per node.

        ``<namespace>/<name>: segmentation``, e.g. ``front/deeplab_segmentation: segmentation``.
        """
        return f'{self.get_fully_qualified_name().lstrip("/")}: segmentation'

    @property
    def statistics(self) -> NodeStatistics:
        """Counters and latency windows (for tests and tools)."""
        return self._stats


def _ignore_further_interrupts() -> None:
    """Ignore further SIGINTs once shutting down, so a second one cannot abort the teardown.

    Ctrl-C in a terminal under ``ros2 launch`` reaches the node twice (from the terminal and
    from launch).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: Set (to 1) by the launch file: the node shuts down cleanly when its parent process exits.
STOP_WITH_PARENT_ENV = 'DEEPLAB_ROS_STOP_WITH_PARENT'


def _stop_with_parent() -> None:
    """Linux: receive SIGINT when the parent process exits (PR_SET_PDEATHSIG).

    ``ros2 launch`` terminated by SIGTERM does not stop its processes (upstream launch logs
    "using SIGTERM can result in orphaned processes"); with this the node still shuts down
    cleanly instead of being left behind.
    """
    if os.environ.get(STOP_WITH_PARENT_ENV) != '1' or not sys.platform.startswith('linux'):
        return
    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGINT), 0, 0, 0)
    if os.getppid() != parent:  # the parent exited before the request took effect
        os.kill(os.getpid(), signal.SIGINT)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``segmentation_node`` executable; exits 0 on SIGINT/SIGTERM."""
    rclpy.init(args=args if args is not None else sys.argv)
    _stop_with_parent()
    node = SegmentationNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _ignore_further_interrupts()
        executor.remove_node(node)
        try:
            node.destroy_node()
        except WorkerStuckError:
            # Logged. Destroying the context under the running worker would race it: leave
            # it to the process exit.
            return 1
        rclpy.try_shutdown()
        _ignore_further_interrupts()  # rclpy's shutdown restored the previous handler
    return 0


if __name__ == '__main__':
    sys.exit(main())
