"""The segmenter: RGB frames of any size in, labels at each frame's own resolution out.

    from deeplab_ros.core.inference.segmenter import Segmenter
    segmenter = Segmenter.from_checkpoint('pretrained')       # or a .pt path
    result = segmenter.segment(rgb_frame, color=True, overlay=True)
    result.labels            # HxW uint8 class ids
    result.class_fractions   # {class id: fraction of pixels}

The network ends at its own logits' resolution and the labels are computed at each frame's
resolution from those logits (``upsample``, :mod:`~deeplab_ros.core.inference.postprocess`).
On CUDA the model runs in float16 (``half``) with channels-last memory; resize, normalise,
labels and palette look-up run on the device, and only uint8 images (and the class pixel
counts) come back: copied into pinned host memory without blocking, with one wait per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import threading
from typing import overload, Sequence

import numpy as np
import torch

from deeplab_ros.core.inference.backends import (
    Forward, OnnxRuntimeForward, resolve_backend, TorchForward)
from deeplab_ros.core.inference.device import resolve_device
from deeplab_ros.core.inference.onnx_export import onnx_cache_stem, OnnxExportError
from deeplab_ros.core.inference.postprocess import (
    blend, colorize, fractions_from_counts, full_resolution_network, labels_at_frame,
    parse_upsample)
from deeplab_ros.core.inference.preprocess import check_input_size, Preprocessor
from deeplab_ros.core.inference.stage_timer import NO_STAGE_TIMER, StageTimer
from deeplab_ros.core.labels import LabelSet
from deeplab_ros.core.models.logits import logits_resize
from deeplab_ros.core.weights.checkpoint import (
    CheckpointError, CheckpointMetadata, device_defaults, load_model)
from deeplab_ros.core.weights.locations import cache_dir


@dataclass
class SegmentationResult:
    """What the segmenter returns for one frame (extras only when asked for)."""

    labels: np.ndarray
    class_fractions: dict[int, float]
    confidence: np.ndarray | None = None
    color: np.ndarray | None = None
    overlay: np.ndarray | None = None


class _HostDownload:
    """Device -> host copies of a batch's outputs, waited for once.

    On CUDA each tensor is copied without blocking into pinned host memory (PyTorch's caching
    host allocator reuses the blocks); :meth:`wait` synchronises the stream once for all of
    them. On the CPU the tensors already are host memory and are returned as they are.
    """

    def __init__(self, device: torch.device) -> None:
        self._stream = torch.cuda.current_stream(device) if device.type == 'cuda' else None

    @overload
    def start(self, tensor: torch.Tensor) -> torch.Tensor: ...

    @overload
    def start(self, tensor: None) -> None: ...

    def start(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """Begin copying ``tensor`` to the host; its host copy (valid after :meth:`wait`)."""
        if tensor is None or self._stream is None:
            return tensor
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        return host

    def wait(self) -> None:
        """Block until every copy started so far is done."""
        if self._stream is not None:
            self._stream.synchronize()


class Segmenter:
    """Runs a segmentation model on RGB frames; thread-safe (one inference at a time)."""

    def __init__(self, model: torch.nn.Module, metadata: CheckpointMetadata, *,
                 device: str | torch.device = 'auto', input_size: int | None = None,
                 half: bool | None = None, labels: LabelSet | None = None,
                 upsample: str = 'exact', backend: str = 'auto', batch_size: int = 1,
                 weights_path: Path | None = None) -> None:
        """Wrap ``model``; ``backend`` is ``'auto'``, ``'torch'`` or ``'onnxruntime'``.

        ``batch_size`` is the most frames one forward usually gets (e.g. the number of
        cameras; ONNX Runtime's TensorRT provider builds its engines for it), and
        ``weights_path`` names the ONNX export cached for ONNX Runtime.
        """
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.metadata = metadata
        # Checked before any export.
        self.input_size = check_input_size(input_size or metadata.input_size)
        self.labels = labels or metadata.label_set()
        if len(self.labels) != metadata.num_classes:
            raise CheckpointError(f'label set {self.labels.name!r} has {len(self.labels)} '
                                  f'classes but the model predicts {metadata.num_classes}',
                                  setting='labels')
        self.upsample = parse_upsample(upsample)
        # How the network's logits map back to its input (the exact labels follow it).
        self.logits_resize = logits_resize(model)
        on_cuda = self.device.type == 'cuda'
        self.half = bool(on_cuda if half is None else half) and on_cuda
        self.backend, self.backend_note = resolve_backend(backend, self.device)
        self._forward = self._make_forward(model, backend, batch_size, weights_path)
        # With onnxruntime the PyTorch module stays on the CPU in float32, as a reference.
        self.model: torch.nn.Module | None = self._forward.model \
            if isinstance(self._forward, TorchForward) else model.float().eval()
        # The input's dtype and layout follow the backend.
        self._preprocess = Preprocessor(
            self.input_size, metadata.mean, metadata.std, self.device,
            dtype=self._forward.input_dtype, channels_last=on_cuda and self.backend == 'torch')
        self._palette = torch.from_numpy(self.labels.palette_lut()).to(self.device)
        # The background class (id 0 in VOC-style label sets, ADE20K's "other") stays
        # unpainted in overlays.
        self._background_first = self.labels.class_names[0].lower() in (
            'background', 'bg', 'other')
        self._lock = threading.Lock()
        #: When set, every call records the time of each stage in it (profiling).
        self.stage_timer: StageTimer | None = None

    def _make_forward(self, model: torch.nn.Module, requested: str, batch_size: int,
                      weights_path: Path | None) -> Forward:
        """The forward of ``self.backend``; ``auto`` falls back to torch if export fails."""
        full_resolution = full_resolution_network(self.upsample)
        if self.backend == 'onnxruntime':
            try:
                return OnnxRuntimeForward(
                    model, self.metadata, device=self.device, input_size=self.input_size,
                    half=self.half, max_batch=batch_size, cache_folder=cache_dir(),
                    cache_stem=onnx_cache_stem(weights_path, self.metadata),
                    full_resolution=full_resolution)
            except OnnxExportError as error:
                if (requested or 'auto').strip().lower() != 'auto':
                    raise
                # A model ONNX cannot represent still runs, with PyTorch.
                self.backend, self.backend_note = 'torch', f'backend auto: {error}; using torch'
        return TorchForward(model, self.device, self.half, full_resolution)

    @classmethod
    def from_checkpoint(cls, weights: str | Path = 'pretrained', *,
                        device: str | torch.device = 'auto', input_size: int | None = None,
                        half: bool | None = None, labels: LabelSet | None = None,
                        variant: str | None = None, num_classes: int | None = None,
                        output_stride: int | None = None, upsample: str = 'exact',
                        backend: str = 'auto', batch_size: int = 1) -> 'Segmenter':
        """Build from ``'pretrained'``, ``'pretrained:NAME'`` or a checkpoint path.

        Input size and output stride not given follow the checkpoint's recommendation for
        the device (:func:`~deeplab_ros.core.weights.checkpoint.device_defaults`).
        """
        from deeplab_ros.core.weights.pretrained import resolve_weights

        resolved_device = device if isinstance(device, torch.device) else \
            resolve_device(device)
        path = resolve_weights(weights)
        model, metadata = load_model(path, variant=variant or None,
                                     num_classes=num_classes or None,
                                     output_stride=output_stride or None)
        device_size, device_stride = device_defaults(metadata, resolved_device)
        if not output_stride and device_stride and device_stride != metadata.output_stride:
            model, metadata = load_model(path, variant=variant or None,
                                         num_classes=num_classes or None,
                                         output_stride=device_stride)
        return cls(model, metadata, device=resolved_device,
                   input_size=input_size or device_size, half=half, labels=labels,
                   upsample=upsample, backend=backend, batch_size=batch_size,
                   weights_path=path)

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return self.metadata.num_classes

    def segment(self, frame_rgb: np.ndarray, *, confidence: bool = False, color: bool = False,
                overlay: bool = False, overlay_alpha: float = 0.5) -> SegmentationResult:
        """Segment one HxWx3 uint8 RGB frame."""
        return self.segment_batch([frame_rgb], confidence=confidence, color=color,
                                  overlay=overlay, overlay_alpha=overlay_alpha)[0]

    def segment_batch(self, frames: Sequence[np.ndarray], *, confidence: bool = False,
                      color: bool = False, overlay: bool = False,
                      overlay_alpha: float = 0.5) -> list[SegmentationResult]:
        """Segment several frames (of any sizes) in one forward pass."""
        if not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f'overlay_alpha must be within [0, 1], got {overlay_alpha}')
        if not frames:
            return []
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise RuntimeError('this segmenter was closed')
            timer = self.stage_timer or NO_STAGE_TIMER
            timer.start()
            uploaded, placements = self._preprocess.upload(frames)
            timer.mark('upload')
            batch = self._preprocess.fill(uploaded, placements)
            timer.mark('preprocess')
            logits = self._forward(batch)
            timer.mark('forward')
            download = _HostDownload(self.device)
            pending = []
            for index, place in enumerate(placements):
                labels, counts, probability = labels_at_frame(
                    logits[index], place, upsample=self.upsample, resize=self.logits_resize,
                    input_size=self.input_size, confidence=confidence)
                colors = colorize(labels, self._palette) if (color or overlay) else None
                mixed = None
                if overlay and colors is not None:  # colours are made for every overlay
                    clear = labels == 0 if self._background_first else None
                    mixed = blend(uploaded[index], colors, overlay_alpha, clear)
                pending.append((labels.numel(), download.start(labels),
                                download.start(counts),
                                download.start(probability),
                                download.start(colors if color else None),
                                download.start(mixed)))
            timer.mark('postprocess')
            download.wait()
            results = [SegmentationResult(
                labels=labels_host.numpy(),
                class_fractions=fractions_from_counts(counts_host.numpy(), pixels),
                confidence=probability_host.numpy() if probability_host is not None else None,
                color=colors_host.numpy() if colors_host is not None else None,
                overlay=mixed_host.numpy() if mixed_host is not None else None)
                for pixels, labels_host, counts_host, probability_host, colors_host, mixed_host
                in pending]
            timer.mark('download')
            return results

    def prepare_batch(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """The normalised, padded network input for ``frames`` (for benchmarks)."""
        with self._lock, torch.inference_mode():
            return self._preprocess(frames)[0]

    def forward_only(self, batch: torch.Tensor) -> torch.Tensor:
        """The bare forward of this segmenter's backend on a normalised batch (benchmarks)."""
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise RuntimeError('this segmenter was closed')
            return self._forward(batch)

    @property
    def forward_backend(self) -> Forward:
        """The backend's forward (profiling reads its settings, e.g. the ONNX file it runs)."""
        return self._forward

    def describe_backend(self) -> str:
        """Backend and execution details, e.g. ``'onnxruntime CPU'`` or ``'torch fp16'``."""
        return self._forward.describe()

    def warmup(self, iterations: int = 1) -> None:
        """Run the model on a blank frame so the first real frame is not slow."""
        blank = np.zeros((self.input_size, self.input_size, 3), dtype=np.uint8)
        for _ in range(iterations):
            self.segment(blank)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        """Release the model (and cached GPU memory)."""
        with self._lock:
            self._forward.close()
            self.model = None
            self._palette = None  # type: ignore[assignment]
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()
