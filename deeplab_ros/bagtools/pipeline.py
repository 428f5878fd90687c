"""Run a recorded bag through the segmentation node and record what it publishes.

The node runs as its own process through its normal entry point
(``deeplab_ros.ros.executable:main``, the ``segmentation_node`` executable) with a
parameters file, and is configured and activated over its lifecycle services, the way
``launch/segment.launch.py`` brings it up. The bag is played and the outputs are recorded from
this process; publish times of the inputs are kept so latencies can be measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
import time

from rclpy.node import Node

from deeplab_ros.bagtools.info import BagRecord
from deeplab_ros.bagtools.player import BagPlayer
from deeplab_ros.bagtools.recorder import BagRecorder, RecordingStats
from deeplab_ros.ros.lifecycle_client import LifecycleClient
from deeplab_ros.ros.node_process import default_params_file, node_command, NodeProcess
from deeplab_ros.ros.outputs import OUTPUTS
from deeplab_ros.ros.segmentation_node import NODE_NAME
from deeplab_ros.ros.spinning import SpunNode, wait_until
from deeplab_ros.ros.stamps import header_key

#: Every per-camera output of the node (a single, unnamed camera); not the compressed twins,
#: copies of images recorded raw.
OUTPUT_TOPICS = tuple(output.topic for output in OUTPUTS if not output.compresses)


class TimedPlayer(BagPlayer):
    """A :class:`BagPlayer` that notes the wall time each image was published at.

    With ``outputs_seen`` (a callable counting the node's outputs so far) each image is
    published only once the previous one's output came back, or ``pace_timeout_s`` passed
    (an image lost in transport): the bag is played at the node's own pace, so no frame is
    replaced by a newer one whatever the host's speed. Paced, the messages recorded at exactly an
    image's bag time (its depth and camera_info, in bags made by ``deeplab-ros-bag make``) are
    published before it, and the image waits until every reliable subscriber acknowledged
    them: such a frame's companions are at the node when the frame is, however slow the host
    or late the node's side of discovery. Messages recorded later keep their place.
    ``unacknowledged`` counts the images sent after that wait timed out.
    """

    def __init__(self, *args: object, image_topic: str,
                 outputs_seen: Callable[[], int] | None = None,
                 pace_timeout_s: float = 20.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.image_topic = image_topic
        self.publish_times: dict[tuple[int, int, str], float] = {}
        self._outputs_seen = outputs_seen
        self._pace_timeout_s = pace_timeout_s
        self._outputs_before_last_image: int | None = None
        #: Images whose output did not come back within ``pace_timeout_s``.
        self.unanswered = 0
        #: Images published before every reliable subscriber acknowledged the earlier messages.
        self.unacknowledged = 0

    def wait_for_last_output(self) -> None:
        """Paced: wait until the last image published has its output (or the timeout)."""
        if self._outputs_seen is None or self._outputs_before_last_image is None:
            return
        outputs_seen, before = self._outputs_seen, self._outputs_before_last_image
        self._outputs_before_last_image = None
        if not wait_until(lambda: outputs_seen() > before, self._pace_timeout_s,
                          interval=0.01):
            self.unanswered += 1

    def _records(self) -> Iterator[BagRecord]:
        records = super()._records()
        if self._outputs_seen is None:
            return records
        return companions_first(records, self.image_topic)

    def _publish(self, topic: str, message: object) -> None:
        if topic == self.image_topic:
            self.wait_for_last_output()
            if self._outputs_seen is not None:
                if not self.wait_for_all_acked(self._pace_timeout_s):
                    self.unacknowledged += 1
                self._outputs_before_last_image = self._outputs_seen()
            self.publish_times[header_key(message.header)] = time.time()
        super()._publish(topic, message)


def companions_first(records: Iterable[BagRecord], image_topic: str) -> Iterator[BagRecord]:
    """``records`` with the images of each bag timestamp after that timestamp's others."""
    group: list[BagRecord] = []
    for record in records:
        if group and record.timestamp_ns != group[0].timestamp_ns:
            yield from sorted(group, key=lambda r: r.topic == image_topic)
            group = []
        group.append(record)
    yield from sorted(group, key=lambda r: r.topic == image_topic)


@dataclass
class PipelineRun:
    """What :func:`run_bag_through_node` did."""

    recording: RecordingStats
    images_published: int
    publish_times: dict[tuple[int, int, str], float]
    node_exit_code: int | None
    node_log: str
    wall_s: float
    node_pid: int = 0
    #: Paced runs: images whose output did not come back within the pacing timeout.
    images_unanswered: int = 0
    #: Paced runs: images sent before their depth / camera_info were acknowledged.
    images_unacknowledged: int = 0


def run_bag_through_node(bag: Path, output_bag: Path, *, params_file: Path | None = None,
                         parameters: Mapping[str, object] | None = None,
                         image_topic: str = '/camera/image_raw',
                         camera_info_topic: str = '/camera/camera_info', depth_topic: str = '',
                         rate: float = 1.0,
                         log_path: Path | None = None, settle_s: float = 3.0,
                         env: Mapping[str, str] | None = None,
                         executable: Sequence[str] | None = None,
                         after_play: Callable[[Node, NodeProcess], None] | None = None,
                         paced: bool = False,
                         before_play: Callable[[Node, NodeProcess], None] | None = None
                         ) -> PipelineRun:
    """Start the node, bring it up, play ``bag`` into it, record its outputs, stop it.

    ``before_play(session_node, node_process)`` (optional) runs once the node is active and
    the recorder subscribed, before the first message is played (to wait for another consumer
    of the node's outputs, for instance). Recording ends ``settle_s`` seconds after the last
    new output message; then
    ``after_play(session_node, node_process)`` (optional) runs while the node is still
    active, before it is stopped with SIGINT. With ``input_transport: compressed`` among
    ``parameters`` the bag's ``<image_topic>/compressed`` is played; with ``depth_topic`` the
    depth images too (remapped onto the node's ``depth``). ``paced`` plays each image only
    after the node's labels for the previous one were recorded (see :class:`TimedPlayer`):
    for checks of what the node outputs rather than of what it drops under load.
    """
    started = time.monotonic()
    params_file = params_file or default_params_file()
    remaps = {'image': image_topic, 'camera_info': camera_info_topic}
    played = [camera_info_topic]
    if depth_topic:
        remaps['depth'] = depth_topic
        played.append(depth_topic)
    if (parameters or {}).get('input_transport') == 'compressed':
        image_topic = image_topic.rstrip('/') + '/compressed'
    played.insert(0, image_topic)
    command = node_command(params_file, parameters=parameters, executable=executable,
                           remaps=remaps)
    node_process = NodeProcess(command, env=env, log_path=log_path)
    session = SpunNode('deeplab_bag_pipeline')
    lifecycle = LifecycleClient(session.node, f'/{NODE_NAME}', alive=node_process.running)
    recorder = None
    exit_code = None
    try:
        recorder = BagRecorder(session.node, output_bag, [f'/{t}' for t in OUTPUT_TOPICS])
        lifecycle.bring_up()
        labels_topic = '/segmentation/labels'
        player = TimedPlayer(session.node, bag, rate=rate, image_topic=image_topic,
                             topics=tuple(played),
                             outputs_seen=(lambda: recorder.stats.counts.get(labels_topic, 0))
                             if paced else None)
        player.wait_for_subscribers(30.0)
        wait_until(lambda: labels_topic in recorder.subscribed_topics, 30.0, interval=0.05)
        if before_play is not None:
            before_play(session.node, node_process)
        stats = player.play()
        player.wait_for_last_output()
        last_total, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < settle_s and node_process.running():
            if recorder.stats.total != last_total:
                last_total, last_change = recorder.stats.total, time.monotonic()
            time.sleep(0.1)
        if after_play is not None:
            after_play(session.node, node_process)
    finally:
        recording = recorder.close() if recorder is not None else None
        lifecycle.destroy()
        exit_code = node_process.stop()
        session.close()
    return PipelineRun(recording=recording,
                       images_published=stats.published.get(image_topic, 0),
                       publish_times=player.publish_times, node_exit_code=exit_code,
                       node_log=node_process.log_text(), wall_s=time.monotonic() - started,
                       node_pid=node_process.pid, images_unanswered=player.unanswered,
                       images_unacknowledged=player.unacknowledged)
