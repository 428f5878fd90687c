"""Backends: choice and fallback, the ONNX export cache, parity with PyTorch, export command."""

from __future__ import annotations

import json
from pathlib import Path
import sys

import cv2
import numpy as np
import pytest
import torch

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.inference.backends import (
    BackendUnavailableError, onnxruntime_available, resolve_backend)
from deeplab_ros.core.inference.onnx_export import (
    cached_onnx, ExportSettings, KEY_PROPERTY, OnnxExportError, read_onnx_metadata)
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.models import available_models, build_model, model_spec
from deeplab_ros.core.models.logits import logits_resize, LogitsOnly
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, load_model
from deeplab_ros.core.weights.pretrained import available_pretrained, pretrained_checkpoint
from deeplab_ros.tools import export as export_tool


CPU = torch.device('cpu')
ARGMAX_AGREEMENT = 0.999
needs_onnxruntime = pytest.mark.skipif(not onnxruntime_available(),
                                       reason='onnxruntime is not installed')


@pytest.fixture
def without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import onnxruntime`` fail as on a machine where it is not installed."""
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)


def _photos(shared: Path) -> list[tuple[str, np.ndarray]]:
    paths = sorted(path for path in (shared / 'data/photos').iterdir()
                   if path.suffix in ('.jpg', '.png', '.bmp') and '_mask' not in path.stem)
    return [(path.name, np.ascontiguousarray(cv2.imread(str(path))[..., ::-1]))
            for path in paths]


@needs_onnxruntime
def test_auto_is_onnxruntime_on_the_cpu_and_torch_on_request() -> None:
    assert resolve_backend('auto', CPU) == ('onnxruntime', '')
    assert resolve_backend('torch', CPU) == ('torch', '')
    assert resolve_backend('onnxruntime', CPU) == ('onnxruntime', '')
    with pytest.raises(InvalidSettingError, match='Unknown backend'):
        resolve_backend('tensorflow', CPU)


def test_without_onnxruntime_auto_falls_back_and_onnxruntime_explains(
        without_onnxruntime: None) -> None:
    backend, note = resolve_backend('auto', CPU)
    assert backend == 'torch' and 'onnxruntime is not installed' in note
    with pytest.raises(BackendUnavailableError, match='pip install onnx onnxruntime'):
        resolve_backend('onnxruntime', CPU)


@pytest.fixture(scope='module')
def small_model() -> tuple[torch.nn.Module, object]:
    """The default pretrained model (its real weights) for export tests at a small input."""
    return load_model(pretrained_checkpoint())


@needs_onnxruntime
def test_cached_export_is_reused_and_rebuilt_when_stale_or_corrupt(
        tmp_path: Path, small_model: tuple) -> None:
    model, metadata = small_model
    settings = ExportSettings(input_size=65)
    path, rebuilt = cached_onnx(model, metadata, tmp_path, 'voc', settings)
    assert rebuilt and path.name == 'voc.s65.fp32.b1d.logits.onnx'
    assert cached_onnx(model, metadata, tmp_path, 'voc', settings) == (path, False)
    # Other settings -> another file; the first one stays valid.
    other, rebuilt = cached_onnx(model, metadata, tmp_path, 'voc',
                                 ExportSettings(input_size=73, batch_size=2))
    assert rebuilt and other != path
    # The graph that ends in the full-size resize: another file, another key.
    full, rebuilt = cached_onnx(model, metadata, tmp_path, 'voc',
                                ExportSettings(input_size=65, full_resolution=True))
    assert rebuilt and full.name == 'voc.s65.fp32.b1d.onnx'
    assert read_onnx_metadata(full)[KEY_PROPERTY] != read_onnx_metadata(path)[KEY_PROPERTY]
    # A file written under an earlier format (same name, other key) is rebuilt.
    full.write_bytes(path.read_bytes())
    assert cached_onnx(model, metadata, tmp_path, 'voc',
                       ExportSettings(input_size=65, full_resolution=True)) == (full, True)
    assert cached_onnx(model, metadata, tmp_path, 'voc', settings) == (path, False)
    # Corrupt bytes inside the weights: the graph digest no longer matches.
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    assert cached_onnx(model, metadata, tmp_path, 'voc', settings) == (path, True)
    # Truncated, then garbage.
    path.write_bytes(path.read_bytes()[:1000])
    assert cached_onnx(model, metadata, tmp_path, 'voc', settings) == (path, True)
    path.write_bytes(b'not an onnx file')
    assert cached_onnx(model, metadata, tmp_path, 'voc', settings) == (path, True)
    # Changed weights: the key no longer matches.
    key = read_onnx_metadata(path)[KEY_PROPERTY]
    changed = build_model(metadata.variant, num_classes=metadata.num_classes,
                          output_stride=metadata.output_stride, **metadata.model_options)
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        next(changed.parameters()).add_(0.01)
    assert cached_onnx(changed, metadata, tmp_path, 'voc', settings) == (path, True)
    assert read_onnx_metadata(path)[KEY_PROPERTY] != key


@needs_onnxruntime
@pytest.mark.parametrize('name', available_pretrained())
def test_onnxruntime_agrees_with_torch_on_real_photos(shared: Path, name: str) -> None:
    torch_segmenter = Segmenter.from_checkpoint(f'pretrained:{name}', device='cpu',
                                                backend='torch')
    ort_segmenter = Segmenter.from_checkpoint(f'pretrained:{name}', device='cpu',
                                              backend='onnxruntime')
    assert ort_segmenter.describe_backend() == 'onnxruntime CPU'
    agreements = []
    for photo, frame in _photos(shared):
        expected = torch_segmenter.segment(frame).labels
        labels = ort_segmenter.segment(frame).labels
        agreements.append((photo, float((labels == expected).mean())))
    print(f'\n{name} at input {ort_segmenter.input_size}: arg-max agreement '
          + ', '.join(f'{photo} {value:.5f}' for photo, value in agreements))
    assert min(value for _, value in agreements) >= ARGMAX_AGREEMENT, agreements
    torch_segmenter.close()
    ort_segmenter.close()


@needs_onnxruntime
def test_batches_larger_than_the_graph_batch_are_split(shared: Path) -> None:
    frames = [frame for _, frame in _photos(shared)[:3]]
    segmenter = Segmenter.from_checkpoint('pretrained', device='cpu', input_size=97,
                                          backend='onnxruntime', batch_size=2)
    together = segmenter.segment_batch(frames)
    for frame, result in zip(frames, together):
        assert np.array_equal(segmenter.segment(frame).labels, result.labels)
    segmenter.close()
    with pytest.raises(RuntimeError, match='closed'):
        segmenter.segment(frames[0])


def test_onnxruntime_backend_without_onnxruntime_fails_with_the_install_hint(
        without_onnxruntime: None) -> None:
    with pytest.raises(BackendUnavailableError, match='pip install onnx onnxruntime'):
        Segmenter.from_checkpoint('pretrained', device='cpu', backend='onnxruntime')
    segmenter = Segmenter.from_checkpoint('pretrained', device='cpu', input_size=65)
    assert segmenter.backend == 'torch' and 'not installed' in segmenter.backend_note


@needs_onnxruntime
def test_export_command_writes_metadata_for_other_runtimes(tmp_path: Path) -> None:
    import onnxruntime

    target = tmp_path / 'deeplab.onnx'
    assert export_tool.main(['--output', str(target), '--input-size', '65',
                             '--batch-size', '2', '--full-resolution']) == 0
    properties = read_onnx_metadata(target)
    model, metadata = load_model(pretrained_checkpoint())
    assert json.loads(properties['class_names']) == list(metadata.label_set().class_names)
    assert json.loads(properties['mean']) == pytest.approx(metadata.mean)
    assert json.loads(properties['std']) == pytest.approx(metadata.std)
    assert properties['input_size'] == '65' and properties['batch_size'] == '2'
    assert properties['output_stride'] == str(metadata.output_stride)
    session = onnxruntime.InferenceSession(str(target), providers=['CPUExecutionProvider'])
    (shape,) = [item.shape for item in session.get_inputs()]
    assert shape == [2, 3, 65, 65]
    logits = session.run(None, {'input': np.zeros((2, 3, 65, 65), np.float32)})[0]
    assert logits.shape == (2, metadata.num_classes, 65, 65)
    assert json.loads(properties['logits_size']) == [65, 65]
    # By default the graph the node runs: logits at the network's resolution (stride 4).
    low = tmp_path / 'deeplab_low.onnx'
    assert export_tool.main(['--output', str(low), '--input-size', '65']) == 0
    properties = read_onnx_metadata(low)
    assert properties['logits_resize'] == logits_resize(model) == 'align_corners'
    assert json.loads(properties['logits_size']) == [17, 17]
    session = onnxruntime.InferenceSession(str(low), providers=['CPUExecutionProvider'])
    assert session.run(None, {'input': np.zeros((1, 3, 65, 65), np.float32)})[0].shape == \
        (1, metadata.num_classes, 17, 17)
    assert export_tool.main(['--output', str(target), '--weights', str(tmp_path / 'none.pt')]) \
        == 1


@pytest.mark.needs_gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (none here)')
def test_onnxruntime_gpu_providers_agree_with_the_cpu(shared: Path) -> None:  # pragma: no cover
    onnxruntime = pytest.importorskip('onnxruntime')
    providers = set(onnxruntime.get_available_providers())
    if not providers & {'CUDAExecutionProvider', 'TensorrtExecutionProvider'}:
        pytest.skip('onnxruntime here has no CUDA or TensorRT provider (needs onnxruntime-gpu)')
    reference = Segmenter.from_checkpoint('pretrained', device='cpu', backend='torch')
    gpu = Segmenter.from_checkpoint('pretrained', device='cuda', backend='onnxruntime',
                                    half=True, batch_size=2)
    assert gpu.describe_backend().startswith(('onnxruntime Tensorrt', 'onnxruntime CUDA'))
    frames = [frame for _, frame in _photos(shared)]
    for frame, result in zip(frames, gpu.segment_batch(frames)):
        expected = reference.segment(frame).labels
        # float16 on the GPU: arg-max may flip on near-ties only.
        assert (result.labels == expected).mean() >= 0.995
    gpu.close()


@needs_onnxruntime
@pytest.mark.parametrize('variant', available_models())
def test_every_registered_model_exports_and_runs_in_onnxruntime(tmp_path: Path,
                                                                variant: str) -> None:
    import onnxruntime

    torch.manual_seed(0)
    stride = max(model_spec(variant).output_strides)
    model = build_model(variant, num_classes=3, output_stride=stride).eval()
    metadata = CheckpointMetadata(variant=variant, num_classes=3, output_stride=stride,
                                  input_size=65)
    path, _ = cached_onnx(model, metadata, tmp_path, variant, ExportSettings(input_size=65))
    batch = torch.randn(2, 3, 65, 65)
    with torch.inference_mode():
        expected = LogitsOnly(model)(batch).numpy()
    assert expected.shape[-1] < 65
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    logits = session.run(None, {'input': batch.numpy()})[0]
    assert logits.shape == expected.shape
    assert json.loads(read_onnx_metadata(path)['logits_size']) == list(expected.shape[-2:])
    assert np.abs(logits - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())


#: The MobileNet ports whose padding is written here (TensorFlow "SAME", VainF's fixed).
PADDED_VARIANTS = ('deeplabv3plus_mobilenetv2', 'deeplabv3plus_mobilenetv2_tf',
                   'deeplabv3_mobilenetv2', 'deeplabv3_mobilenet_edgetpu',
                   'lraspp_mobilenetv3_large_tf')


@needs_onnxruntime
@pytest.mark.parametrize('size', [64, 65])  # asymmetric and symmetric TensorFlow padding
@pytest.mark.parametrize('variant', PADDED_VARIANTS)
def test_padding_is_folded_into_the_convolutions_in_onnxruntime(tmp_path: Path, variant: str,
                                                                size: int) -> None:
    import onnx
    import onnxruntime

    torch.manual_seed(0)
    stride = max(model_spec(variant).output_strides)
    model = build_model(variant, num_classes=3, output_stride=stride).eval()
    metadata = CheckpointMetadata(variant=variant, num_classes=3, output_stride=stride,
                                  input_size=size)
    path, _ = cached_onnx(model, metadata, tmp_path, variant, ExportSettings(input_size=size))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / 'optimized.onnx')
    session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                           providers=['CPUExecutionProvider'])
    operators = {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}
    assert 'Conv' in operators and 'Pad' not in operators
    batch = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        expected = LogitsOnly(model)(batch).numpy()  # the graph ends at the logits' size
    logits = session.run(None, {'input': batch.numpy()})[0]
    assert np.abs(logits - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())


@needs_onnxruntime
def test_onnxruntime_profile_is_split_into_runs(tmp_path: Path) -> None:
    import onnx

    from deeplab_ros.core.inference.backends import execution_providers
    from deeplab_ros.tools.bench_profile import (
        graph_reorders, parse_ort_profile, profiling_session)

    variant = 'deeplabv3plus_mobilenetv2_tf'
    model = build_model(variant, num_classes=3, output_stride=16).eval()
    metadata = CheckpointMetadata(variant=variant, num_classes=3, output_stride=16,
                                  input_size=65)
    path, _ = cached_onnx(model, metadata, tmp_path, variant, ExportSettings(input_size=65))
    session, optimized = profiling_session(
        path, execution_providers(CPU, False, 1, 65, tmp_path), tmp_path, 'graph')
    batch = np.random.default_rng(0).standard_normal((1, 3, 65, 65), np.float32)
    for _ in range(4):
        session.run(None, {'input': batch})
    events = json.loads(Path(session.end_profiling()).read_text())
    by_type, by_node, runs_ms = parse_ort_profile(events, skip_runs=1)
    assert len(by_type) == len(by_node) == len(runs_ms) == 3
    for types, nodes, run_ms in zip(by_type, by_node, runs_ms):
        assert types['Conv'] > 0
        assert sum(types.values()) == pytest.approx(sum(nodes.values()))
        assert sum(types.values()) <= run_ms  # each kernel counted in its own run only
    # The layout reorders of the graph as ONNX Runtime rewrote it, each one timed.
    nodes = onnx.load(str(optimized)).graph.node
    reorders = graph_reorders(optimized, by_node[0])
    assert [reorder.node for reorder in reorders] == \
        [node.name for node in nodes if node.op_type in ('ReorderInput', 'ReorderOutput')]
    assert all(reorder.node in by_node[0] for reorder in reorders)


@needs_onnxruntime
def test_auto_runs_with_torch_when_the_export_fails(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError('an operator ONNX cannot express')

    weights = pretrained_checkpoint()
    monkeypatch.setenv('DEEPLAB_ROS_CACHE', str(tmp_path))  # no export cached: one is needed
    monkeypatch.setattr(torch.onnx, 'export', refuse)
    variant = load_model(weights)[1].variant
    segmenter = Segmenter.from_checkpoint(str(weights), device='cpu', input_size=65)
    assert segmenter.backend == 'torch'
    assert 'an operator ONNX cannot express' in segmenter.backend_note
    assert segmenter.segment(np.zeros((20, 30, 3), np.uint8)).labels.shape == (20, 30)
    with pytest.raises(OnnxExportError, match=f'ONNX export of {variant} failed'):
        Segmenter.from_checkpoint(str(weights), device='cpu', input_size=65,
                                  backend='onnxruntime')
