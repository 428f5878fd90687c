"""Pre-processing on the device: uint8 frames in, a normalised, padded batch out.

Frames are uploaded as uint8 and resized and normalised where the model runs (GPU or CPU),
so only the raw bytes cross the bus. The resize keeps the aspect ratio (longer side ->
``input_size``) and pads the bottom/right to a square with the normalisation's zero (the
mean colour); :class:`Placement` remembers where each frame sits so the result can be cropped
and resized back.

The batch is written once: the bilinear resize of the frame (in float32) is normalised,
converted to the model's dtype and stored in its memory layout by one operation writing
straight into the frame's region of the batch, and only the padding around it is zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deeplab_ros.core.errors import InputError, InvalidSettingError

#: Smallest square network input side (pixels) the models accept.
MIN_INPUT_SIZE = 17


class FrameError(InputError):
    """A frame is not an HxWx3 uint8 image."""


@dataclass(frozen=True)
class Placement:
    """Where a frame sits in the square network input."""

    frame_height: int
    frame_width: int
    height: int  # resized height inside the network input
    width: int   # resized width inside the network input


def check_frame(frame: np.ndarray) -> None:
    """Raise :class:`FrameError` unless ``frame`` is a non-empty HxWx3 uint8 array."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f'expected a numpy array, got {type(frame).__name__}')
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(f'expected an HxWx3 uint8 RGB image, got {frame.dtype} '
                         f'{tuple(frame.shape)}')
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise FrameError(f'empty frame of shape {tuple(frame.shape)}')


def check_input_size(input_size: int) -> int:
    """The network input side, checked: at least :data:`MIN_INPUT_SIZE` pixels.

    Raises:
        InvalidSettingError: ``input_size`` is smaller.
    """
    if int(input_size) < MIN_INPUT_SIZE:
        raise InvalidSettingError(f'input_size must be at least {MIN_INPUT_SIZE}, got '
                                  f'{input_size}', setting='input_size')
    return int(input_size)


def placement_for(height: int, width: int, input_size: int) -> Placement:
    """Aspect-preserving placement of a ``height`` x ``width`` frame in the square input."""
    scale = input_size / max(height, width)
    return Placement(height, width, max(1, min(input_size, round(height * scale))),
                     max(1, min(input_size, round(width * scale))))


def upload_frame(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """Move an HxWx3 uint8 frame to ``device`` as a 1x3xHxW uint8 tensor (no float copy)."""
    tensor = torch.from_numpy(np.ascontiguousarray(frame))
    if device.type == 'cuda':
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor.permute(2, 0, 1).unsqueeze(0)


class Preprocessor:
    """Resize, normalise and pad frames into one batch on the model's device.

    ``dtype`` and ``channels_last`` are the batch's type and memory layout (what the
    backend takes); they may be changed between calls.
    """

    def __init__(self, input_size: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> None:
        self.input_size = check_input_size(input_size)
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        # (x / 255 - mean) / std  ==  x * scale + shift, computed in float32.
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t

    def __call__(self, frames: Sequence[np.ndarray]
                 ) -> tuple[torch.Tensor, list[Placement], list[torch.Tensor]]:
        """Return (batch [N,3,S,S], placements, the uploaded uint8 frames)."""
        uploaded, placements = self.upload(frames)
        return self.fill(uploaded, placements), placements, uploaded

    def upload(self, frames: Sequence[np.ndarray]
               ) -> tuple[list[torch.Tensor], list[Placement]]:
        """Check every frame and move it to the device: (1x3xHxW uint8 tensors, placements).

        Raises:
            FrameError: A frame is not an HxWx3 uint8 image.
        """
        for frame in frames:
            check_frame(frame)
        return ([upload_frame(frame, self.device) for frame in frames],
                [placement_for(frame.shape[0], frame.shape[1], self.input_size)
                 for frame in frames])

    def fill(self, uploaded: Sequence[torch.Tensor], placements: Sequence[Placement]
             ) -> torch.Tensor:
        """The batch of uploaded frames: each resized, normalised and padded in one write."""
        size = self.input_size
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = torch.empty((len(uploaded), 3, size, size), dtype=self.dtype,
                            device=self.device, memory_format=memory_format)
        for index, (pixels, place) in enumerate(zip(uploaded, placements)):
            batch[index, :, place.height:, :] = 0
            batch[index, :, :place.height, place.width:] = 0
            resized = pixels.float()
            if (place.height, place.width) != (place.frame_height, place.frame_width):
                resized = F.interpolate(resized, size=(place.height, place.width),
                                        mode='bilinear', align_corners=False)
            # Computed in float32, stored in the batch's dtype and layout.
            torch.addcmul(self._shift, resized, self._scale,
                          out=batch[index:index + 1, :, :place.height, :place.width])
        return batch
