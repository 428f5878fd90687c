"""The GPU check's bundle, run in its CPU mode by a Python that has only torch and numpy.

The bundle is built as ``make gpu-check-bundle`` builds it; its ``run.py`` runs from another
folder with ``python -S`` and a ``PYTHONPATH`` of links to torch, numpy and their requirements
only (:mod:`support.minimal_python`), so OpenCV, PyYAML, torchvision, ONNX and rclpy cannot be
imported, and the package it imports is the bundle's copy, not the installed one.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess

import numpy as np
import pytest
import torch

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.weights.pretrained import available_pretrained, DEFAULT_PRETRAINED
from deeplab_ros.tools import gpu_check
from deeplab_ros.tools.gpu_check_bundle import build_bundle, check_size, MAX_BYTES, PHOTOS
from support.minimal_python import minimal_python

#: A command prefix and environment (:func:`support.minimal_python.minimal_python`).
Python = tuple[list[str], dict[str, str]]
#: The model timed here: the smallest (timing the default model's batches costs minutes on a
#: busy 2-core host, and the timing rows have the same form for every model).
TIMED = 'deeplabv3_mnv2_dm05_float'


@pytest.fixture(scope='module')
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle built into a temporary folder."""
    folder = tmp_path_factory.mktemp('gpu_check') / 'bundle'
    assert build_bundle(folder) <= MAX_BYTES
    return folder


@pytest.fixture(scope='module')
def python(tmp_path_factory: pytest.TempPathFactory) -> Python:
    """Command prefix and environment of a Python with only torch and numpy."""
    return minimal_python(tmp_path_factory.mktemp('site'))


def _run(python: Python, bundle: Path, cwd: Path,
         *options: str) -> subprocess.CompletedProcess[str]:
    command, env = python
    return subprocess.run([*command, str(bundle / 'run.py'), '--device', 'cpu', *options],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def test_the_bundle_holds_every_pretrained_model_within_its_size(bundle: Path) -> None:
    manifest = json.loads((bundle / gpu_check.MANIFEST).read_text())
    assert [model['name'] for model in manifest['models']] == list(available_pretrained())
    assert manifest['default_model'] == DEFAULT_PRETRAINED
    assert [photo['name'] for photo in manifest['photos']] == list(PHOTOS)
    assert len({tuple(photo['shape']) for photo in manifest['photos']}) == len(PHOTOS)
    assert (bundle / 'README.txt').read_text().count('run.py') >= 1
    assert check_size(bundle) <= MAX_BYTES
    assert not list(bundle.rglob('__pycache__'))


def test_cpu_mode_passes_with_only_torch_and_numpy(bundle: Path, python: Python,
                                                   tmp_path: Path) -> None:
    out = tmp_path / 'result' / 'check.json'
    completed = _run(python, bundle, tmp_path, '--out', str(out), '--iterations', '1',
                     '--timing-models', TIMED)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(out.read_text())
    assert result['passed'] and result['failures'] == []
    assert Path(result['package']['path']) == (bundle / 'deeplab_ros').resolve()
    assert result['package']['in_bundle']
    assert not any(result['modules'].values()), result['modules']
    assert result['device']['type'] == 'cpu' and result['device']['torch'] == torch.__version__
    models = list(available_pretrained())
    assert result['models'] == models and result['photos'] == list(PHOTOS)
    rows = {(row['check'], row['model'], row['photo']): row for row in result['agreement']}
    assert {check for check, _, _ in rows} == {'reference', 'batch'}  # no float16 on the CPU
    for model in models:
        for photo in PHOTOS:
            assert rows['reference', model, photo]['agreement'] >= gpu_check.AGREEMENT
            assert rows['batch', model, photo]['agreement'] >= gpu_check.AGREEMENT
    timed = {(row['model'], row['backend'], row['resolution'], row['batch'])
             for row in result['timings']}
    assert timed == {(TIMED, 'torch', resolution, batch) for resolution in gpu_check.RESOLUTIONS
                     for batch in (1, gpu_check.BATCH)}
    assert all(row['ms_median'] > 0 and row['iterations'] == 1 for row in result['timings'])
    assert [row['backend'] for row in result['unavailable']] == ['onnxruntime']
    assert 'onnxruntime is not installed' in result['unavailable'][0]['reason']
    table = out.with_suffix('.md').read_text()
    assert table in completed.stdout and 'PASSED' in table
    assert all(f'| {model} |' in table for model in models)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / 'bundle'
    shutil.copytree(bundle, copy)
    return copy


def test_a_disagreeing_reference_fails_the_check(bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    copy = _copy(bundle, tmp_path)
    references = copy / 'references' / f'{TIMED}.npz'
    with np.load(references) as stored:
        labels = {name: stored[name] for name in stored.files}
    pets = labels['pets']
    pets[: pets.shape[0] // 10] = 255  # a tenth of the photo disagrees
    np.savez_compressed(references, **labels)
    out = tmp_path / 'check.json'
    status = gpu_check.main(['--bundle', str(copy), '--device', 'cpu', '--out', str(out),
                             '--models', TIMED, '--timing-models', 'none'])
    assert status == 1
    result = json.loads(out.read_text())
    assert not result['passed'] and result['models'] == [TIMED]
    assert [failure.split(':')[0] for failure in result['failures']] == \
        [f'reference {TIMED} pets']
    assert result['timings'] == [] and 'FAILED' in capsys.readouterr().out


def test_a_damaged_checkpoint_is_reported(bundle: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    copy = _copy(bundle, tmp_path)
    manifest = json.loads((copy / gpu_check.MANIFEST).read_text())
    first = manifest['models'][0]
    first['sha256'] = '0' * 64
    (copy / gpu_check.MANIFEST).write_text(json.dumps(manifest))
    status = gpu_check.main(['--bundle', str(copy), '--device', 'cpu', '--models',
                             first['name'], '--timing-models', 'none'])
    assert status == 2
    assert f'{first["checkpoint"]} is not the checkpoint the bundle was built with' in \
        capsys.readouterr().err


def test_an_oversized_bundle_is_refused(tmp_path: Path) -> None:
    (tmp_path / 'data.bin').write_bytes(b'\0' * 2000)
    with pytest.raises(ConfigurationError, match=r'more than 0.0 MB \(largest: data.bin\)'):
        check_size(tmp_path, 1000)
    assert check_size(tmp_path, 2000) == 2000
