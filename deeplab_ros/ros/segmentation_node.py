"""The segmentation lifecycle node: camera images in; labels, overlays and class presence out.

    ros2 run deeplab_ros segmentation_node --ros-args -r image:=/camera/image_raw
    ros2 lifecycle set /deeplab_segmentation configure && ...  activate

Every output carries its input frame's exact header; :mod:`deeplab_ros.ros.outputs` lists them
(docs/node.md describes them). Frames are never queued: each camera keeps only its newest frame
and a worker thread infers the newest frames of all cameras as one batch, at most
``target_rate`` times a second (:mod:`deeplab_ros.streaming.frame_scheduler`). The executor
only receives frames (checking a raw image's fields) and serves parameter and lifecycle
services; the worker decodes, infers and publishes. Each camera's endpoints are a
:class:`~deeplab_ros.ros.camera_stream.CameraStream`; the process around the node is
:mod:`deeplab_ros.ros.executable`.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from diagnostic_msgs.msg import DiagnosticArray

from deeplab_ros.core.errors import ConfigurationError, InputError
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.ros import parameters as params
from deeplab_ros.ros.autoware_mask import autoware_table
from deeplab_ros.ros.camera_stream import CameraStream, PendingFrame
from deeplab_ros.ros.depth_input import check_depth_message, DepthInputError
from deeplab_ros.ros.frame_outputs import FrameOutputs, FrameReporting, segmenter_extras
from deeplab_ros.ros.image_codec import check_image_msg
from deeplab_ros.ros.messages import label_info, segmentation_diagnostics
from deeplab_ros.ros.outputs import OUTPUT_QOS  # noqa: F401 - the outputs' QoS, re-exported
from deeplab_ros.ros.segmenter_setup import segmenter_from_parameters
from deeplab_ros.ros.spatial_outputs import SPATIAL_PARAMETERS, SpatialSettings
from deeplab_ros.ros.stamps import stamp_ns
from deeplab_ros.ros.transitions import guarded_transition
from deeplab_ros.streaming.frame_scheduler import NewestFrameScheduler
from deeplab_ros.streaming.statistics import NodeStatistics
from deeplab_ros.streaming.throttle import KeyedThrottle

NODE_NAME = 'deeplab_segmentation'
ERROR_THROTTLE_SECONDS = 5.0
#: How long teardown waits for the inference worker to finish its batch (seconds).
WORKER_JOIN_TIMEOUT_S = 30.0
#: An active camera that sent no image for this long turns /diagnostics to WARN (seconds).
NO_IMAGE_WARN_S = 5.0


class WorkerStuckError(RuntimeError):
    """The inference worker did not stop in time; what it uses was left in place."""


class SegmentationNode(LifecycleNode):
    """Managed node running a DeepLab segmenter on one or more camera streams."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        self._segmenter: Segmenter | None = None
        self._cameras: list[CameraStream] = []
        self._worker: threading.Thread | None = None
        self._scheduler: NewestFrameScheduler[CameraStream, PendingFrame] = \
            NewestFrameScheduler(lambda: self._live.target_rate)
        self._stats = NodeStatistics()
        self._live = params.LiveSettings()
        #: The output stages, from configure to cleanup.
        self._outputs: FrameOutputs | None = None
        self._error_throttle = KeyedThrottle(ERROR_THROTTLE_SECONDS)
        self._diagnostics_publisher: Any = None
        self._diagnostics_timer: Any = None
        #: The model parameters as they were at configure (what the node runs with).
        self._values_at_configure: dict[str, Any] = {}
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
        spatial = None
        if self._outputs is not None and any(c.name in SPATIAL_PARAMETERS for c in changes):
            # Class names are checked against the model before the change is accepted.
            live = copy.copy(self._live)
            for change in changes:
                if change.name in SPATIAL_PARAMETERS:
                    setattr(live, change.name, change.value)
            try:
                spatial = SpatialSettings.from_live(live, self._outputs.spatial.labels)
            except ConfigurationError as error:
                return SetParametersResult(successful=False, reason=str(error))
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
        if spatial is not None and self._outputs is not None:
            self._outputs.update_spatial_settings(spatial)  # resolved once, not per frame
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    @guarded_transition('configure', release_on_failure=True)
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build and warm up the model, create publishers."""
        value = lambda name: params.value(self, name)  # noqa: E731
        logger = self.get_logger()
        segmenter = None
        try:
            segmenter = segmenter_from_parameters(self)
            autoware = autoware_table(self, segmenter.labels)
            outputs = FrameOutputs(segmenter.labels, self._live, FrameReporting(
                self._stats, logger, self.resolve_topic_name, self._report_bad_input,
                ERROR_THROTTLE_SECONDS), autoware)
        except ConfigurationError as error:
            if segmenter is not None:
                segmenter.close()
            where = f' (parameter {error.setting})' if error.setting else ''
            logger.error(f'configure failed{where}: {error}')
            return TransitionCallbackReturn.FAILURE
        self._segmenter, self._outputs = segmenter, outputs
        names = list(value('cameras') or [])
        self._cameras = [CameraStream(name, f'{name}/') for name in names] or \
            [CameraStream('', '')]
        for camera in self._cameras:
            camera.create_publishers(self, bool(value('use_depth')),
                                     int(value('depth_queue_size')), autoware is not None)
        period = float(value('diagnostics_period'))
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        if period > 0:
            self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics)
        self._values_at_configure = {name: value(name) for name in params.MODEL_PARAMETERS}
        meta = segmenter.metadata
        logger.info(f'configured: {meta.variant} ({meta.source or value("weights")}), '
                    f'{meta.num_classes} classes, input {segmenter.input_size}, '
                    f'device {segmenter.device}{" fp16" if segmenter.half else ""}, '
                    f'backend {segmenter.describe_backend()}, '
                    f'cameras {[c.name or "(default)" for c in self._cameras]}'
                    f'{", autoware_mask on" if autoware is not None else ""}')
        return TransitionCallbackReturn.SUCCESS

    @guarded_transition('activate')
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe, publish the label info and start the inference worker."""
        assert self._segmenter is not None  # configured: activate follows configure
        result = super().on_activate(state)
        compressed = self._values_at_configure.get('input_transport') == 'compressed'
        for camera in self._cameras:
            camera.subscribe(self, compressed=compressed, on_image=self._on_image,
                             on_depth=self._on_depth)
            header = Header(stamp=self.get_clock().now().to_msg())
            camera.publish('label_info', label_info(
                header, self._segmenter.labels, self._live.presence_min_fraction))
        self._scheduler.start()
        self._activated_at = time.monotonic()
        self._worker = threading.Thread(target=self._work, name='deeplab_inference',
                                        daemon=True)
        self._worker.start()
        return result

    @guarded_transition('deactivate')
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and unsubscribe; nothing is published while inactive."""
        self._stop_worker()
        self._unsubscribe()
        return super().on_deactivate(state)

    @guarded_transition('cleanup')
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model (and GPU memory) and the publishers."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @guarded_transition('shutdown cleanup', result_on_error=TransitionCallbackReturn.SUCCESS)
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from any state."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @guarded_transition('error recovery')  # FAILURE on any other error too: finalized, not a loop
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
            camera.unsubscribe(self)
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
            camera.destroy_publishers(self)
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
        self._outputs = None

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
    def _on_image(self, camera: CameraStream, message: Image | CompressedImage) -> None:
        """Keep the newest frame for the worker; a raw image's fields are checked now."""
        self._stats.count('received')
        self._stats.input_rate.tick()
        camera.last_received = time.monotonic()
        frame = PendingFrame(message, camera.last_received)
        if not frame.compressed:
            try:
                check_image_msg(message)
            except InputError as error:
                self._report_bad_input('bad_inputs', 'image', camera.topic('image'), error)
                return
        if self._scheduler.offer(camera, frame):
            self._stats.count('skipped')

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
        if self._error_throttle.allow((topic, what, problem)):
            self.get_logger().error(
                f'bad {what} on {self.resolve_topic_name(topic)}: {error} '
                f'({getattr(self._stats, counter)} {counter.replace("_", " ")} so far)')

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

    def _decoded(self, camera: CameraStream, frame: PendingFrame) -> np.ndarray | None:
        """The frame as RGB, or None (counted and reported) when it cannot be decoded."""
        try:
            return frame.decode()
        except InputError as error:
            self._report_bad_input('bad_inputs', frame.kind,
                                   camera.image_topic(frame.compressed), error)
            return None

    def _process(self, batch: list[tuple[CameraStream, PendingFrame]]) -> None:
        segmenter, outputs = self._segmenter, self._outputs
        assert segmenter is not None and outputs is not None  # between activate and deactivate
        decoded = [(camera, frame, self._decoded(camera, frame)) for camera, frame in batch]
        ready = [(camera, frame, rgb) for camera, frame, rgb in decoded if rgb is not None]
        if not ready:
            return
        wanted = [outputs.wanted(camera) for camera, _, _ in ready]
        started = time.monotonic()
        results = segmenter.segment_batch([rgb for _, _, rgb in ready],
                                          overlay_alpha=self._live.overlay_alpha,
                                          **segmenter_extras(wanted))
        self._stats.inference.add(time.monotonic() - started)
        for (camera, frame, _), result, frame_wanted in zip(ready, results, wanted):
            outputs.publish(camera, frame, result, frame_wanted)
            done = time.monotonic()
            self._stats.count('processed')
            self._stats.output_rate.tick(done)
            self._stats.node_latency.add(done - frame.received)
            stamp = stamp_ns(frame.header)
            if stamp > 0:
                now = self.get_clock().now().nanoseconds
                self._stats.end_to_end.add(max(0, now - stamp) * 1e-9)

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        if self._diagnostics_publisher is None or self._segmenter is None:
            return
        active, now = self._scheduler.running, time.monotonic()
        silent = [camera.name or camera.topic('image') for camera in self._cameras
                  if active and now - (camera.last_received or self._activated_at) >
                  NO_IMAGE_WARN_S]
        self._diagnostics_publisher.publish(segmentation_diagnostics(
            Header(stamp=self.get_clock().now().to_msg()), self.diagnostic_name(),
            self._segmenter, self._stats, active, silent, NO_IMAGE_WARN_S,
            ','.join(camera.name or '(default)' for camera in self._cameras)))

    def diagnostic_name(self) -> str:
        """The status name on /diagnostics, unique per node.

        ``<namespace>/<name>: segmentation``, e.g. ``front/deeplab_segmentation: segmentation``.
        """
        return f'{self.get_fully_qualified_name().lstrip("/")}: segmentation'

    @property
    def statistics(self) -> NodeStatistics:
        """The node's counters and latency windows, which /diagnostics summarises."""
        return self._stats
