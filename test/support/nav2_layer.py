"""Nav2's semantic_segmentation_layer as a test subscriber: its subscriptions and its checks.

A port of what the layer does with the topics of one observation source, from
``ros-navigation/semantic_segmentation_layer`` (commit b269885415ac, files and lines cited as
``layer.cpp:N`` = ``src/semantic_segmentation_layer.cpp``, ``buffer.cpp:N`` =
``src/segmentation_buffer.cpp``, ``buffer.hpp:N`` =
``include/semantic_segmentation_layer/segmentation_buffer.hpp``):

- subscriptions: the mask, the optional confidence image and the point cloud with
  ``nav2::qos::SensorDataQoS(sensor_data_depth)`` (best effort, volatile, keep last 10 by
  default; layer.cpp:78, 196, 223-237, 246-251), the LabelInfo with
  ``nav2::qos::LatchedSubscriptionQoS(5)`` (reliable, transient local; layer.cpp:202,
  228-232); both profiles as ``ros-navigation/navigation2`` (commit 082352fd5de9) defines
  them in ``nav2_ros_common/include/nav2_ros_common/qos_profiles.hpp`` (SensorDataQoS lines
  90-104, LatchedSubscriptionQoS lines 70-84);
- synchronisation: ApproximateTime over (mask, confidence, cloud) or (mask, cloud), queue
  ``sensor_data_depth``, maximum interval 0.1 s (layer.cpp:252-258, 294-299;
  :mod:`support.approximate_time`);
- LabelInfo: the class map is built from ``class_map[].class_name`` matched by exact string
  against the configured classes; ids of unconfigured names are dropped (buffer.cpp:107-122,
  buffer.hpp:724-740);
- the refusals of a synchronised set, with the layer's messages: mask and cloud sizes differ
  (``width * height``, layer.cpp:464-472 / 502-510), mask data shorter than
  ``width * height`` (layer.cpp:473-481 / 511-519), no LabelInfo yet (layer.cpp:482-486 /
  520-524); without a confidence topic every confidence is 255 (layer.cpp:487-491);
- buffering (buffer.cpp:186-295): point i is pixel ``i = v * width + u`` (the mask is read as
  ``data[v * width + u]``, so its ``step`` must equal ``width``); points with a non-finite z
  are skipped (buffer.cpp:205), as are points outside (min, max) obstacle distance of the
  sensor origin (buffer.cpp:212-222); each costmap tile keeps one pixel per frame, the one of
  highest ``max_cost`` (``use_cost_selection``) or of highest confidence, the first one on
  ties (buffer.cpp:227-250; ``getCostById`` gives 0 for an unconfigured id, buffer.hpp:
  759-766); its observation is kept only when its class is in the class map
  (buffer.cpp:279-294, ``hasClassId`` buffer.hpp:774-777);
- a tile's cost (layer.cpp:390-398): ``max_cost`` once it holds ``samples_to_max_cost``
  observations whose mean confidence (0-255) is above ``mark_confidence``, else
  ``base_cost``.

Not ported: TF. The layer passes the cloud through a ``tf2_ros::MessageFilter`` into the
costmap's global frame (layer.cpp:239-244, buffer.cpp:189); here a fixed mount
(:class:`CameraMount`) stands in for that transform. Nor the temporal queues that merge
frames on a tile (buffer.hpp:288-508): each frame is reported on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import threading
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, PointField
from vision_msgs.msg import LabelInfo
import yaml

from deeplab_ros.ros.stamps import stamp_ns
from support.approximate_time import ApproximateTimeSync

#: layer.cpp:77-78: the layer's defaults.
SENSOR_DATA_DEPTH = 10
#: layer.cpp:258 and 299: ``setMaxIntervalDuration(rclcpp::Duration(0, 100000000))``.
MAX_INTERVAL_NS = 100_000_000
#: The message the layer logs when it refuses a set for its sizes (layer.cpp:467).
SIZE_REFUSAL = 'Pointcloud and segmentation sizes are different, will not buffer message.'


def sensor_data_qos(depth: int = SENSOR_DATA_DEPTH) -> QoSProfile:
    """``nav2::qos::SensorDataQoS(depth)``: best effort, volatile, keep last ``depth``."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def latched_subscription_qos(depth: int = 5) -> QoSProfile:
    """``nav2::qos::LatchedSubscriptionQoS(5)``: reliable, transient local, keep last 5."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class ClassType:
    """One entry of ``class_types``: its class names and costs (layer.cpp:154-185)."""

    name: str
    classes: tuple[str, ...]
    base_cost: int = 0
    max_cost: int = 0
    mark_confidence: int = 0
    samples_to_max_cost: int = 0
    dominant_priority: bool = False

    def cost(self, samples: int, confidence_sum: float) -> int:
        """The tile's cost with ``samples`` observations of this type (layer.cpp:390-398)."""
        if samples >= self.samples_to_max_cost and confidence_sum / samples > \
                self.mark_confidence:
            return self.max_cost
        return self.base_cost


@dataclass(frozen=True)
class ObservationSource:
    """One observation source of the layer, read like layer.cpp:106-185 (with its defaults)."""

    name: str
    segmentation_topic: str
    confidence_topic: str
    labels_topic: str
    pointcloud_topic: str
    class_types: tuple[ClassType, ...]
    max_obstacle_distance: float = 5.0
    min_obstacle_distance: float = 0.3
    use_cost_selection: bool = True

    @classmethod
    def from_parameters(cls, name: str, values: dict[str, Any]) -> 'ObservationSource':
        """The source ``name`` of a layer's parameters (``values`` = its block)."""
        types = tuple(ClassType(name=type_name, classes=tuple(values[type_name]['classes']),
                                **{key: value for key, value in values[type_name].items()
                                   if key != 'classes'})
                      for type_name in values['class_types'])
        known = {'segmentation_topic', 'confidence_topic', 'labels_topic', 'pointcloud_topic',
                 'max_obstacle_distance', 'min_obstacle_distance', 'use_cost_selection'}
        return cls(name=name, class_types=types,
                   **{key: value for key, value in values.items() if key in known})

    def class_of_name(self) -> dict[str, ClassType]:
        """Class name -> its class type (the layer's ``class_map``, layer.cpp:181-184)."""
        return {name: class_type for class_type in self.class_types
                for name in class_type.classes}


def layer_sources(path: Path) -> dict[str, ObservationSource]:
    """Every observation source block of the semantic_segmentation_layer in a Nav2 file.

    Reads ``<costmap>: <costmap>: ros__parameters: <layer>`` blocks whose ``plugin`` is the
    layer; sources are the sub-blocks with ``class_types`` (the ones ``observation_sources``
    names and any alternative the file offers).
    """
    sources: dict[str, ObservationSource] = {}
    for outer in yaml.safe_load(path.read_text()).values():
        for inner in outer.values():
            for layer in inner['ros__parameters'].values():
                if not (isinstance(layer, dict) and layer.get('plugin') ==
                        'semantic_segmentation_layer::SemanticSegmentationLayer'):
                    continue
                for name, block in layer.items():
                    if isinstance(block, dict) and 'class_types' in block:
                        sources[name] = ObservationSource.from_parameters(name, block)
    return sources


@dataclass(frozen=True)
class CameraMount:
    """Stands in for TF: the camera optical frame -> a base frame (x forward, z up).

    A camera ``height`` metres above the ground looking straight ahead:
    ``(x, y, z)_base = (z, -x, height - y)_optical``.
    """

    height: float = 0.5

    def to_base(self, xyz: np.ndarray) -> np.ndarray:
        """Nx3 optical-frame points -> Nx3 base-frame points (float64)."""
        xyz = xyz.astype(np.float64)
        return np.stack([xyz[:, 2], -xyz[:, 0], self.height - xyz[:, 1]], axis=1)

    @property
    def origin(self) -> np.ndarray:
        """The sensor origin in the base frame (buffer.cpp:138-144)."""
        return np.array([0.0, 0.0, self.height])


@dataclass
class BufferedFrame:
    """What one accepted set gave the layer's tile map."""

    stamp_ns: int
    size: tuple[int, int]                    # mask (height, width)
    considered: int                          # points in range with a finite z
    #: Tile (ix, iy) -> (pixel index, class id, confidence) of its kept observation.
    tiles: dict[tuple[int, int], tuple[int, int, int]]
    #: Class type name -> the tiles it marks in this frame.
    marks: dict[str, set[tuple[int, int]]]
    #: Class type name -> the tile costs of a fresh map after this frame alone.
    costs: dict[str, list[int]]


@dataclass
class LayerPort:
    """Subscribes to one observation source as the layer does; records what it would buffer.

    ``refusals`` holds the layer's warning for every refused set; ``contract`` what the layer
    silently assumes and a set broke (mono8 mask with ``step == width``, float32 ``x y z``,
    a finite z only with finite x and y).
    """

    node: Node
    source: ObservationSource
    resolution: float = 0.05
    mount: CameraMount = field(default_factory=CameraMount)
    sensor_data_depth: int = SENSOR_DATA_DEPTH
    label_info: LabelInfo | None = None
    id_to_type: dict[int, ClassType] = field(default_factory=dict)
    buffered: list[BufferedFrame] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    contract: list[str] = field(default_factory=list)
    sets: int = 0
    #: Messages received per subscribed topic (before synchronisation).
    received: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        source, qos = self.source, sensor_data_qos(self.sensor_data_depth)
        with_confidence = bool(source.confidence_topic)
        inputs = 3 if with_confidence else 2
        self._sync = ApproximateTimeSync(inputs, self.sensor_data_depth, MAX_INTERVAL_NS,
                                         self._on_set)
        topics = [source.segmentation_topic]
        if with_confidence:
            topics.append(source.confidence_topic)
        create = self.node.create_subscription
        self._subscriptions = [
            create(Image, topic, lambda message, i=index, t=topic: self._add(i, t, message), qos)
            for index, topic in enumerate(topics)]
        self._subscriptions.append(create(
            PointCloud2, source.pointcloud_topic,
            lambda message: self._add(inputs - 1, source.pointcloud_topic, message), qos))
        self._subscriptions.append(create(LabelInfo, source.labels_topic, self._on_label_info,
                                          latched_subscription_qos()))

    def close(self) -> None:
        """Unsubscribe (the layer's observation source goes away)."""
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions.clear()

    # ----------------------------------------------------------------- callbacks
    def _add(self, index: int, topic: str, message: Any) -> None:
        with self.lock:
            self.received[topic] = self.received.get(topic, 0) + 1
        self._sync.add(index, message)

    def _on_label_info(self, message: LabelInfo) -> None:
        """``createSegmentationCostMultimap`` (buffer.cpp:107-122, buffer.hpp:724-740)."""
        configured = self.source.class_of_name()
        with self.lock:
            self.label_info = message
            self.id_to_type = {int(item.class_id) & 0xFF: configured[item.class_name]
                               for item in message.class_map
                               if item.class_name in configured}

    def _on_set(self, segmentation: Image, *rest: Any) -> None:
        """``syncSegm(Conf)PointcloudCb`` (layer.cpp:459-528)."""
        cloud = rest[-1]
        confidence = rest[0] if len(rest) == 2 else None
        with self.lock:
            self.sets += 1
            if segmentation.width * segmentation.height != cloud.width * cloud.height:
                self.refusals.append(
                    f'{SIZE_REFUSAL} segmentation->width:{segmentation.width}, '
                    f'segmentation->height:{segmentation.height}, '
                    f'pointcloud->width:{cloud.width}, pointcloud->height:{cloud.height}')
                return
            expected = segmentation.width * segmentation.height
            if len(segmentation.data) < expected:
                self.refusals.append(
                    f'segmentation arrays have wrong sizes: data->{len(segmentation.data)}, '
                    f'expected->{expected}. Will not buffer message')
                return
            if not self.id_to_type:  # isClassIdCostMapEmpty (buffer.hpp:803-806, 888)
                self.refusals.append(
                    'Class map is empty because a labelinfo message has not been received '
                    f'for topic {self.source.name}. Will not buffer message')
                return
            self._check_contract(segmentation, confidence, cloud)
            if self.contract:
                return
            self.buffered.append(self._buffer(segmentation, confidence, cloud))

    # ----------------------------------------------------------------- buffering
    def _check_contract(self, segmentation: Image, confidence: Image | None,
                        cloud: PointCloud2) -> None:
        for name, image in (('mask', segmentation), ('confidence', confidence)):
            if image is None:
                continue
            if image.encoding != 'mono8' or image.step != image.width:
                self.contract.append(f'{name} is {image.encoding} with step {image.step} for '
                                     f'width {image.width}: read as data[v * width + u]')
            if (image.height, image.width) != (segmentation.height, segmentation.width):
                self.contract.append(f'{name} is {image.width}x{image.height}, the mask '
                                     f'{segmentation.width}x{segmentation.height}')
        fields = {f.name: f for f in cloud.fields}
        for axis in 'xyz':
            if axis not in fields or fields[axis].datatype != PointField.FLOAT32:
                self.contract.append(f'the cloud has no float32 {axis} field')

    def _xyz(self, cloud: PointCloud2, count: int) -> np.ndarray:
        """The first ``count`` points' x y z, read as PointCloud2ConstIterator<float> steps
        through the data: ``point_step`` bytes a point (buffer.cpp:192-194)."""
        offsets = {f.name: f.offset for f in cloud.fields}
        dtype = np.dtype({'names': ['x', 'y', 'z'], 'formats': ['<f4'] * 3,
                          'offsets': [offsets['x'], offsets['y'], offsets['z']],
                          'itemsize': cloud.point_step})
        points = np.frombuffer(bytes(cloud.data), dtype=dtype, count=count)
        return np.stack([points['x'], points['y'], points['z']], axis=1)

    def _buffer(self, segmentation: Image, confidence: Image | None,
                cloud: PointCloud2) -> BufferedFrame:
        """``bufferSegmentation`` for one set (buffer.cpp:124-313), vectorised."""
        count = segmentation.width * segmentation.height
        mask = np.frombuffer(bytes(segmentation.data), np.uint8, count=count)
        scores = (np.frombuffer(bytes(confidence.data), np.uint8, count=count)
                  if confidence is not None else np.full(count, 255, np.uint8))
        xyz = self.mount.to_base(self._xyz(cloud, count))
        finite = np.isfinite(xyz[:, 2])
        if not np.isfinite(xyz[finite]).all():
            self.contract.append('a point has a finite z but not a finite x or y')
        squared = ((xyz - self.mount.origin) ** 2).sum(axis=1)
        with np.errstate(invalid='ignore'):
            far = (squared >= self.source.max_obstacle_distance ** 2) | \
                (squared <= self.source.min_obstacle_distance ** 2)
        pixels = np.flatnonzero(finite & ~far)
        # worldToIndex: floor(x / resolution), the resolution held as a float
        # (buffer.hpp:517, 569-574).
        resolution = float(np.float32(self.resolution))
        tile_x = np.floor(xyz[pixels, 0] / resolution).astype(np.int64)
        tile_y = np.floor(xyz[pixels, 1] / resolution).astype(np.int64)
        classes = mask[pixels]
        if self.source.use_cost_selection:
            max_cost = np.zeros(256, np.int64)
            for class_id, class_type in self.id_to_type.items():
                max_cost[class_id] = class_type.max_cost
            key = max_cost[classes]
        else:
            key = scores[pixels].astype(np.int64)
        # Per tile the first pixel (row-major) of the highest key: a later pixel replaces the
        # kept one only when its key is strictly higher (buffer.cpp:227-250).
        order = np.lexsort((pixels, -key, tile_y, tile_x))
        first = np.ones(len(order), bool)
        first[1:] = (np.diff(tile_x[order]) != 0) | (np.diff(tile_y[order]) != 0)
        tiles: dict[tuple[int, int], tuple[int, int, int]] = {}
        marks: dict[str, set[tuple[int, int]]] = {t.name: set() for t in self.source.class_types}
        costs: dict[str, list[int]] = {t.name: [] for t in self.source.class_types}
        for position in order[first]:
            pixel, class_id = int(pixels[position]), int(classes[position])
            tile = (int(tile_x[position]), int(tile_y[position]))
            class_type = self.id_to_type.get(class_id)
            if class_type is None:  # hasClassId: not configured, not buffered
                continue
            score = int(scores[pixel])
            tiles[tile] = (pixel, class_id, score)
            marks[class_type.name].add(tile)
            costs[class_type.name].append(class_type.cost(1, float(score)))
        return BufferedFrame(stamp_ns=stamp_ns(segmentation.header),
                             size=(segmentation.height, segmentation.width),
                             considered=len(pixels), tiles=tiles, marks=marks, costs=costs)


def summary(layer: LayerPort) -> dict[str, Any]:
    """What the port saw, as JSON-friendly data (for a port run as its own process)."""
    with layer.lock:
        info = layer.label_info
        return {
            'label_info': None if info is None else [
                [int(item.class_id), item.class_name] for item in info.class_map],
            'sets': layer.sets, 'received': dict(layer.received),
            'refusals': list(layer.refusals),
            'contract': list(layer.contract),
            'frames': [{'stamp_ns': f.stamp_ns, 'size': list(f.size),
                        'considered': f.considered,
                        'marks': {name: len(tiles) for name, tiles in f.marks.items()},
                        'scores': sorted({score for _, _, score in f.tiles.values()})}
                       for f in layer.buffered]}


def main(argv: list[str] | None = None) -> None:
    """Run the port as its own process, the way the layer runs in Nav2's costmap node.

    ``python -m support.nav2_layer CONFIG SOURCE``: subscribes, prints ``READY``, then
    ``MATCHED`` once each subscription has a publisher, and on SIGINT prints the
    :func:`summary` as one JSON line and exits.
    """
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    import rclpy  # noqa: PLC0415
    from rclpy.executors import ExternalShutdownException  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('config', type=Path)
    parser.add_argument('source')
    arguments = parser.parse_args(argv)
    rclpy.init(args=['nav2_layer_port'])
    node = Node('semantic_segmentation_layer_port')
    layer = LayerPort(node, layer_sources(arguments.config)[arguments.source])
    print('READY', flush=True)

    def report_matched() -> None:
        # Every subscription sees a publisher: the node's outputs reach this process.
        if all(subscription.get_publisher_count() > 0 for subscription in node.subscriptions):
            print('MATCHED', flush=True)
            node.destroy_timer(matched_timer)

    matched_timer = node.create_timer(0.1, report_matched)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    print(json.dumps(summary(layer)), flush=True)


if __name__ == '__main__':
    main()
