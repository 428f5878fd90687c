"""Network-forward backends: PyTorch eager or ONNX Runtime, behind one interface.

Only the forward pass differs between backends: pre- and post-processing stay on the
segmenter's device as torch operations, and a backend takes the normalised batch
(``[N, 3, S, S]`` tensor) and returns the logits as a tensor on the same device: at the
network's own resolution, or resized to the input with ``full_resolution``
(:mod:`~deeplab_ros.core.models.logits`).

- ``torch``: the model itself (float16 and channels-last on CUDA).
- ``onnxruntime``: the model exported to ONNX (cached, see
  :mod:`deeplab_ros.core.inference.onnx_export`) in an ONNX Runtime session created once and
  released by :meth:`Forward.close`. On the CPU it uses ``intra_op`` threads equal to torch's
  thread count (one per physical core by default) and idle workers that sleep rather than spin; on
  CUDA it uses the TensorRT execution provider when present (float16 when ``half``), else
  the CUDA provider (a float16 graph when ``half``), with inputs and outputs bound to the
  torch tensors in device memory.
- ``auto``: ONNX Runtime on the CPU when it is installed (faster than PyTorch eager there in
  every measurement, with the same arg-max: ``docs/benchmarks.md#backends``), else PyTorch
  (with a note, ``Segmenter.backend_note``, that callers report); PyTorch on CUDA (ONNX
  Runtime's GPU providers have not been measured against PyTorch's float16 path, so the
  measured path stays the default there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError
from deeplab_ros.core.inference.onnx_export import (
    cached_onnx, ExportSettings, INPUT_NAME, logits_size, OUTPUT_NAME, read_onnx_metadata)
from deeplab_ros.core.models.logits import LogitsOnly
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata

BACKENDS = ('auto', 'torch', 'onnxruntime')
ONNXRUNTIME_INSTALL_HINT = (
    'install it with: pip install onnx onnxruntime (CPU) or pip install onnx '
    'onnxruntime-gpu (CUDA and TensorRT providers)')


class BackendUnavailableError(ConfigurationError):
    """The requested backend (or one of its providers) is not installed here."""


class Forward(Protocol):
    """A network forward: normalised batch in, logits out, on the segmenter's device."""

    name: str
    input_dtype: torch.dtype

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` for a normalised ``[N, 3, S, S]`` batch."""

    def describe(self) -> str:
        """Backend and execution details for logs and diagnostics."""

    def close(self) -> None:
        """Release the model or session."""


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def parse_backend(spec: str) -> str:
    """The backend setting normalised: one of :data:`BACKENDS` ('' means ``'auto'``).

    Raises:
        InvalidSettingError: ``spec`` is none of them.
    """
    text = (spec or 'auto').strip().lower()
    if text not in BACKENDS:
        raise InvalidSettingError(f'Unknown backend {spec!r}: use {", ".join(BACKENDS)}.',
                                  setting='backend')
    return text


def resolve_backend(spec: str, device: torch.device) -> tuple[str, str]:
    """The backend to use for ``spec`` on ``device``, and a note when ``auto`` fell back.

    Raises:
        InvalidSettingError: ``spec`` is not one of :data:`BACKENDS`.
        BackendUnavailableError: ``onnxruntime`` was asked for and is not installed.
    """
    text = parse_backend(spec)
    if text == 'torch':
        return 'torch', ''
    available = onnxruntime_available()
    if text == 'onnxruntime':
        if not available:
            raise BackendUnavailableError(
                f'backend "onnxruntime" was requested but onnxruntime is not installed; '
                f'{ONNXRUNTIME_INSTALL_HINT} (or use backend "torch" or "auto").',
                setting='backend')
        return 'onnxruntime', ''
    if device.type != 'cpu':
        return 'torch', ''
    if not available:
        return 'torch', ('backend auto: onnxruntime is not installed, using torch (the CPU '
                         f'forward is faster with onnxruntime: {ONNXRUNTIME_INSTALL_HINT})')
    return 'onnxruntime', ''


class TorchForward:
    """PyTorch eager forward of the model on the segmenter's device."""

    name = 'torch'

    def __init__(self, model: torch.nn.Module, device: torch.device, half: bool,
                 full_resolution: bool = False) -> None:
        self.input_dtype = torch.float16 if half else torch.float32
        self.channels_last = device.type == 'cuda'
        module = model.to(device, self.input_dtype).eval()
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.model: torch.nn.Module | None = module
        self._network = module if full_resolution else LogitsOnly(module).eval()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the eager model on ``batch`` and return its logits.

        Raises:
            RuntimeError: The forward was closed.
        """
        if self.model is None:
            raise RuntimeError('this segmenter was closed')
        return self._network(batch)

    def describe(self) -> str:
        """Return ``'torch'``, with ``' fp16'`` appended when the model runs in float16."""
        return 'torch' + (' fp16' if self.input_dtype == torch.float16 else '')

    def close(self) -> None:
        """Drop the model, so its memory can be freed; later calls raise."""
        self.model = None
        self._network = None  # type: ignore[assignment]


def cpu_threads() -> int:
    """ONNX Runtime intra-op threads on the CPU: torch's thread count (physical cores)."""
    return max(1, torch.get_num_threads())


def execution_providers(device: torch.device, half: bool, max_batch: int, input_size: int,
                        cache_folder: Path) -> list[tuple[str, dict[str, str]]]:
    """ONNX Runtime providers for ``device``, best first, with their options.

    On CUDA: TensorRT (fp16 when ``half``; engines cached in ``cache_folder``) when present,
    then CUDA; the CPU provider comes last for anything they do not run. Raises
    :class:`BackendUnavailableError` when CUDA is asked for but onnxruntime has no GPU
    provider (the CPU-only ``onnxruntime`` package).
    """
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    cpu: tuple[str, dict[str, str]] = ('CPUExecutionProvider', {})
    if device.type != 'cuda':
        return [cpu]
    index = str(device.index or 0)
    stream = str(torch.cuda.current_stream(device).cuda_stream)
    providers: list[tuple[str, dict[str, str]]] = []
    if 'TensorrtExecutionProvider' in available:
        shape = f'{INPUT_NAME}:{{}}x3x{input_size}x{input_size}'
        providers.append(('TensorrtExecutionProvider', {
            'device_id': index, 'trt_fp16_enable': str(bool(half)),
            'trt_engine_cache_enable': 'True', 'trt_engine_cache_path': str(cache_folder),
            'trt_timing_cache_enable': 'True',
            'trt_profile_min_shapes': shape.format(1),
            'trt_profile_opt_shapes': shape.format(max_batch),
            'trt_profile_max_shapes': shape.format(max_batch),
            'has_user_compute_stream': '1', 'user_compute_stream': stream}))
    if 'CUDAExecutionProvider' in available:
        providers.append(('CUDAExecutionProvider', {
            'device_id': index, 'has_user_compute_stream': '1',
            'user_compute_stream': stream, 'cudnn_conv_algo_search': 'HEURISTIC'}))
    if not providers:
        raise BackendUnavailableError(
            f'backend "onnxruntime" on {device} needs a GPU build of onnxruntime (providers '
            f'here: {", ".join(sorted(available))}); install onnxruntime-gpu, or use backend '
            '"torch".', setting='backend')
    return providers + [cpu]


def onnxruntime_session(path: Path, providers: list[tuple[str, dict[str, str]]], *,
                        profile_prefix: str | None = None,
                        optimized_path: Path | None = None):
    """An ONNX Runtime session on ``path`` with the backend's settings and ``providers``.

    ``profile_prefix`` turns on ONNX Runtime's profiler (its JSON file is named by
    ``session.end_profiling()``); ``optimized_path`` is where the graph as ONNX Runtime
    rewrote it is saved. Both serve ``deeplab-ros-bench --profile``.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1
    # Idle workers sleep instead of spinning: PyTorch's pre/post-processing threads
    # (and the node's) run right after each forward on the same cores, and the full
    # path measured faster so (docs/benchmarks.md#onnx-runtime-session-settings).
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        # Saving a graph with CPU-specific (NCHWc) rewrites warns that it fits this CPU only.
        options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=[name for name, _ in providers],
        provider_options=[provider for _, provider in providers])


class OnnxRuntimeForward:
    """ONNX Runtime forward of the model's cached ONNX export; the session lives until close."""

    name = 'onnxruntime'

    def __init__(self, model: torch.nn.Module, metadata: CheckpointMetadata, *,
                 device: torch.device, input_size: int, half: bool, max_batch: int,
                 cache_folder: Path, cache_stem: str, full_resolution: bool = False) -> None:
        import onnxruntime

        self.device = device
        self.num_classes = metadata.num_classes
        self.input_size = input_size
        self.max_batch = max(1, max_batch)
        on_cuda = device.type == 'cuda'
        providers = execution_providers(device, half and on_cuda, self.max_batch, input_size,
                                        cache_folder)
        # TensorRT takes the float32 graph and builds float16 engines itself; the CUDA
        # provider runs a float16 graph.
        graph_half = half and on_cuda and providers[0][0] == 'CUDAExecutionProvider'
        self.input_dtype = torch.float16 if graph_half else torch.float32
        settings = ExportSettings(input_size=input_size, batch_size=self.max_batch,
                                  dynamic_batch=True, half=graph_half,
                                  full_resolution=full_resolution)
        self.path, self.rebuilt = cached_onnx(
            model, metadata, cache_folder, cache_stem, settings,
            device=device if graph_half else torch.device('cpu'))
        self.logits_size = logits_size(read_onnx_metadata(self.path))
        #: The providers and their options, best first (a profiling session reuses them).
        self.provider_settings = providers
        self.session: onnxruntime.InferenceSession | None = onnxruntime_session(
            self.path, providers)
        self.providers = tuple(self.session.get_providers())
        self.half = half and on_cuda
        self._outputs: dict[int, torch.Tensor] = {}  # batch size -> reused logits buffer

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits for ``batch``, in a buffer this forward reuses: valid until its next call."""
        if self.session is None:
            raise RuntimeError('this segmenter was closed')
        if batch.shape[0] > self.max_batch:  # more frames than the graph was built for
            return torch.cat([self(part).clone() for part in batch.split(self.max_batch)])
        batch = batch.to(self.input_dtype).contiguous()
        # Input and output are bound to torch's memory (host or device): no copies, and the
        # output buffer is reused, so no fresh 20 MB of logits is paged in at every frame.
        output = self._outputs.get(batch.shape[0])
        if output is None:
            output = torch.empty((batch.shape[0], self.num_classes, *self.logits_size),
                                 dtype=self.input_dtype, device=self.device)
            self._outputs[batch.shape[0]] = output
        element = np.float16 if self.input_dtype == torch.float16 else np.float32
        kind, index = self.device.type, self.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, kind, index, element, tuple(batch.shape),
                           batch.data_ptr())
        binding.bind_output(OUTPUT_NAME, kind, index, element, tuple(output.shape),
                            output.data_ptr())
        self.session.run_with_iobinding(binding)
        return output

    def describe(self) -> str:
        """Return ``'onnxruntime'`` with the first provider's short name and ``' fp16'`` if set."""
        provider = self.providers[0].replace('ExecutionProvider', '') if self.providers else '?'
        return f'onnxruntime {provider}' + (' fp16' if self.half else '')

    def close(self) -> None:
        """Drop the session and the reused output buffers; later calls raise."""
        self.session = None
        self._outputs.clear()
