"""Python ports of Autoware's run-length mask code, line by line, to check against.

From ``perception_utils/src/run_length_encoder.cpp`` (``runLengthEncoder``,
``runLengthDecoder``) and the 5-byte packing of ``autoware_tensorrt_yolox``'s node (a uint8
value then a native int32 length, memcpy'd side by side).
"""

from __future__ import annotations

import struct

import numpy as np


def autoware_run_length_encoder(image: np.ndarray) -> bytes:
    """runLengthEncoder + the yolox node's packing of each pair into 5 bytes."""
    rows, cols = image.shape
    compressed = [[int(image[0, 0]), 0]]
    for i in range(rows):
        for j in range(cols):
            current = int(image[i, j])
            if compressed[-1][0] == current:
                compressed[-1][1] += 1
            else:
                compressed.append([current, 1])
    return b''.join(struct.pack('<B', value) + struct.pack('<i', length)
                    for value, length in compressed)


def autoware_run_length_decoder(data: bytes, rows: int, cols: int) -> np.ndarray:
    """runLengthDecoder(rle_data, rows, cols)."""
    mask = np.zeros((rows, cols), np.uint8)
    index = 0
    step = 1 + 4
    for i in range(0, len(data), step):
        value = data[i]
        (length,) = struct.unpack('<i', data[i + 1:i + 5])
        for _ in range(length):
            mask[index // cols, index % cols] = value
            index += 1
            if index > rows * cols:
                break
    return mask
