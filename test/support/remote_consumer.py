"""A consumer of the segmentation node in a process of its own, for the discovery-server test.

    python -m support.remote_consumer --frames a.png b.png --out result.npz

It runs with whatever discovery the environment sets up (``ROS_DISCOVERY_SERVER`` ...) and
reports on stdout, one JSON object a line:

1. ``{"isolated": bool}`` after ``--isolation-s`` seconds of looking for the node (its name
   or its lifecycle service) without finding it;
2. then it waits up to ``--discovery-s`` for the node, configures and activates it over its
   lifecycle services, subscribes to ``segmentation/labels`` and the compressed labels and
   overlay, publishes each frame (RGB, read from the files) on ``image`` and keeps what
   comes back for it; ``{"discovered_after_s": s}`` and finally ``{"done": n}``.

What came back is written to ``--out`` (numpy ``.npz``: per frame the raw labels, the
compressed labels and overlay as image_transport decodes them, their ``format`` and the
stamps), for the test to check.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import threading
import time

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from deeplab_ros.ros.lifecycle_client import LifecycleClient
from deeplab_ros.ros.segmentation_node import NODE_NAME
from deeplab_ros.ros.spinning import SpunNode, wait_until
from deeplab_ros.ros.stamps import header_key
from support.codec import decode_like_image_transport
from support.ros import decoded, image_message, RELIABLE

#: Times a frame is sent until its compressed twins come back too.
ATTEMPTS = 5
TOPICS = {'labels': Image, 'labels/compressed': CompressedImage,
          'overlay/compressed': CompressedImage}


def _say(**values: object) -> None:
    print(json.dumps(values), flush=True)


def _node_seen(node) -> bool:
    names = {name for name, _ in node.get_node_names_and_namespaces()}
    services = {name for name, _ in node.get_service_names_and_types()}
    return NODE_NAME in names or f'/{NODE_NAME}/get_state' in services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', nargs='+', type=Path, required=True)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--isolation-s', type=float, default=8.0)
    parser.add_argument('--discovery-s', type=float, default=60.0)
    parser.add_argument('--timeout-s', type=float, default=120.0)
    args = parser.parse_args(argv)

    ros = SpunNode('deeplab_remote_consumer')
    try:
        node = ros.node
        alone = not wait_until(lambda: _node_seen(node), args.isolation_s, interval=0.1)
        _say(isolated=alone)
        started = time.monotonic()
        if not wait_until(lambda: _node_seen(node), args.discovery_s, interval=0.1):
            _say(error=f'the node did not appear within {args.discovery_s:g} s')
            return 1
        _say(discovered_after_s=round(time.monotonic() - started, 2))
        lifecycle = LifecycleClient(node, f'/{NODE_NAME}')
        lifecycle.bring_up(timeout=args.timeout_s * 2)

        received: dict[str, list] = {name: [] for name in TOPICS}
        lock = threading.Lock()

        def keep(name: str):
            def callback(message) -> None:
                with lock:
                    received[name].append(message)
            return callback

        for name, kind in TOPICS.items():
            node.create_subscription(kind, f'/segmentation/{name}', keep(name), RELIABLE)
        publisher = node.create_publisher(Image, '/image', RELIABLE)
        assert wait_until(lambda: publisher.get_subscription_count() > 0 and all(
            node.count_publishers(f'/segmentation/{name}') for name in TOPICS),
            args.timeout_s), 'the node did not match the consumer'

        def for_key(key: tuple) -> dict:
            with lock:
                return {name: message for name, messages in received.items()
                        for message in messages if header_key(message.header) == key}

        arrays: dict[str, np.ndarray] = {}
        formats = []
        for index, path in enumerate(args.frames):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            # The node compresses only for subscribers it has matched: until its side of the
            # match is done, a frame comes back without its compressed twins; send it again.
            for attempt in range(ATTEMPTS):
                message = image_message(rgb, frame_id='remote',
                                        stamp_ns=(index + 1) * 1_000_000_000 + attempt)
                key = header_key(message.header)
                publisher.publish(message)
                if not wait_until(lambda: 'labels' in for_key(key), args.timeout_s):
                    _say(error=f'frame {index}: no labels came back')
                    return 1
                if wait_until(lambda: len(for_key(key)) == len(TOPICS), 10.0):
                    break
            else:
                _say(error=f'frame {index}: only {sorted(for_key(key))} came back')
                return 1
            got = for_key(key)
            arrays[f'labels_{index}'] = decoded(got['labels'])
            for name in ('labels', 'overlay'):
                encoding, pixels = decode_like_image_transport(got[f'{name}/compressed'])
                arrays[f'{name}_compressed_{index}'] = pixels
                formats.append((index, name, got[f'{name}/compressed'].format, encoding))
            arrays[f'size_{index}'] = np.array([message.height, message.width])
        np.savez(args.out, formats=np.array(json.dumps(formats)), **arrays)
        _say(done=len(args.frames))
        return 0
    finally:
        ros.close()


if __name__ == '__main__':
    raise SystemExit(main())
