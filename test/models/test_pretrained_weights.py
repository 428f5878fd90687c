"""Pretrained weights that travel with an install: the cache is self-sufficient, local
folders and the shared folder are searched, downloads are checked (a local HTTP server on
127.0.0.1 stands in for the publisher), and a machine without the model says what to fetch."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import os
from pathlib import Path
import shutil
import threading
from typing import Iterator

import pytest

from deeplab_ros.core.weights import locations, pretrained
from deeplab_ros.core.weights.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from deeplab_ros.core.weights.download import sha256_of
from deeplab_ros.core.weights.locations import MissingAssetError
from support.ros import node_under_test


# The smallest published model (760 KB): quick to convert.
SMALL = 'deeplabv3_mnv2_dm05_dequant'


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, user weights folder and shared folder (nothing prepared)."""
    for name, env in (('cache', locations.CACHE_ENV), ('user_weights', locations.WEIGHTS_PATH_ENV),
                      ('shared', locations.SHARED_ENV)):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(env, str(tmp_path / name))
    return tmp_path


def _published(shared: Path, name: str) -> Path:
    return shared / 'weights' / pretrained.PRETRAINED[name].tflite_file


@contextlib.contextmanager
def _http_server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (an ephemeral port); yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}/'
    finally:
        server.shutdown()
        server.server_close()


def _point_at(monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> None:
    spec = dataclasses.replace(pretrained.PRETRAINED[name], url=url)
    monkeypatch.setitem(pretrained.PRETRAINED, name, spec)


def test_registry_rows_name_a_url_and_the_sha256_of_the_shared_file(shared: Path) -> None:
    for spec in pretrained.PRETRAINED.values():
        # TF Hub serves its files under a model path, not the file name: the download is
        # saved under ``tflite_file`` whatever the URL ends with.
        assert spec.url.startswith('https://') and len(spec.url) > len('https://'), spec
        assert sha256_of(shared / 'weights' / spec.tflite_file) == spec.sha256, spec.name


def test_cached_checkpoint_needs_no_source(isolated: Path, shared: Path) -> None:
    shutil.copy(_published(shared, SMALL), isolated / 'user_weights')
    first = pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    _, metadata = read_checkpoint(first)
    assert metadata.source_sha256 == sha256_of(_published(shared, SMALL))
    (isolated / 'user_weights' / _published(shared, SMALL).name).unlink()
    stamp = first.stat().st_mtime_ns
    again = pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    assert again == first and again.stat().st_mtime_ns == stamp  # used as it is
    assert pretrained.is_cached(pretrained.PRETRAINED[SMALL])


def test_shared_folder_of_a_source_checkout_is_found_from_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: Path) -> None:
    monkeypatch.delenv(locations.SHARED_ENV, raising=False)
    monkeypatch.setattr(locations, '_MODULE_ROOT', tmp_path / 'install' / 'lib')  # an install
    workspace = tmp_path / 'ws'
    checkout = workspace / 'src' / 'deeplab_ros'
    (checkout / 'deeplab_ros').mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / 'package.xml', checkout)
    (workspace / 'src' / 'shared').symlink_to(shared)
    monkeypatch.chdir(workspace)
    assert locations.shared_dir() == shared.resolve()


def test_cache_with_another_source_is_converted_again(isolated: Path, shared: Path) -> None:
    (isolated / 'shared' / 'weights').mkdir()
    shutil.copy(_published(shared, SMALL), isolated / 'shared' / 'weights')
    path = pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    spec = dataclasses.replace(pretrained.PRETRAINED[SMALL], sha256='0' * 64)
    assert not pretrained.is_cached(spec)
    assert pretrained.is_cached(pretrained.PRETRAINED[SMALL]) and path.is_file()


def test_cache_of_another_conversion_is_converted_again(
        isolated: Path, shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / 'shared' / 'weights').mkdir()
    shutil.copy(_published(shared, SMALL), isolated / 'shared' / 'weights')
    path = pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    stamp = path.stat().st_mtime_ns
    assert pretrained.is_cached(pretrained.PRETRAINED[SMALL])
    # Other run settings in the row, or a converter whose output changed: not reused.
    resized = dataclasses.replace(pretrained.PRETRAINED[SMALL], input_size=321)
    assert not pretrained.is_cached(resized)
    monkeypatch.setattr(pretrained, 'CONVERSION_REVISION', pretrained.CONVERSION_REVISION + 1)
    assert not pretrained.is_cached(pretrained.PRETRAINED[SMALL])
    again = pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    assert again == path and again.stat().st_mtime_ns != stamp
    assert read_checkpoint(again)[1].conversion == pretrained.conversion_key(
        pretrained.PRETRAINED[SMALL])


#: Cache keys exactly as caches written before converters had names record them (the
#: converter's module path, conversion revision 2, the rows' run settings).
LEGACY_KEYS = {
    SMALL: 'deeplab_ros.core.tflite_convert:convert_tflite r2 input_size=513 '
           'output_stride=None cuda=0/0',
    'deeplabv3plus_mnv2_ade20k': 'deeplab_ros.core.tflite_convert:convert_tflite r2 '
                                 'input_size=385 output_stride=16 cuda=513/8',
    'lraspp_mnv3_cityscapes': 'deeplab_ros.core.tflite_mobilenetv3:'
                              'convert_mobilenetv3_tflite r2 input_size=769 '
                              'output_stride=None cuda=1025/0',
}


def test_cache_keys_name_converters_not_code_locations() -> None:
    for spec in pretrained.PRETRAINED.values():
        assert spec.converter in pretrained.CONVERTERS, spec.name
        key = pretrained.conversion_key(spec)
        assert key.startswith(f'{spec.converter} r{pretrained.CONVERSION_REVISION} ')
        assert 'deeplab_ros' not in key and ':' not in key.split()[0], key


@pytest.mark.parametrize('name', sorted(LEGACY_KEYS))
def test_cache_with_a_legacy_key_is_still_current(name: str) -> None:
    assert LEGACY_KEYS[name] in pretrained.accepted_conversion_keys(pretrained.PRETRAINED[name])
    assert LEGACY_KEYS[name] != pretrained.conversion_key(pretrained.PRETRAINED[name])


def test_cache_written_with_a_legacy_key_is_used_without_its_source(
        isolated: Path, shared: Path) -> None:
    # A cache entry exactly as written before converters had names: the legacy key in its
    # metadata, no source file anywhere (an offline robot). It is used as it is.
    model, metadata = pretrained.converter('tflite')(_published(shared, SMALL))
    metadata.source_sha256 = pretrained.PRETRAINED[SMALL].sha256
    metadata.conversion = LEGACY_KEYS[SMALL]
    path = save_checkpoint(pretrained.cached_checkpoint_path(SMALL), model, metadata)
    stamp = path.stat().st_mtime_ns
    assert pretrained.is_cached(pretrained.PRETRAINED[SMALL])
    again = pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    assert again == path and again.stat().st_mtime_ns == stamp  # not converted again
    assert read_checkpoint(again)[1].conversion == LEGACY_KEYS[SMALL]
    # A legacy key of another revision or other run settings is not current.
    for stale in (LEGACY_KEYS[SMALL].replace(' r2 ', ' r1 '),
                  LEGACY_KEYS[SMALL].replace('input_size=513', 'input_size=321')):
        metadata.conversion = stale
        save_checkpoint(path, model, metadata)
        assert not pretrained.is_cached(pretrained.PRETRAINED[SMALL]), stale


def test_local_file_with_the_wrong_checksum_is_refused(isolated: Path) -> None:
    spec = pretrained.PRETRAINED[SMALL]
    (isolated / 'user_weights' / spec.tflite_file).write_bytes(b'not the published model')
    with pytest.raises(CheckpointError, match='sha256'):
        pretrained.pretrained_checkpoint(SMALL, allow_download=False)
    assert not pretrained.cached_checkpoint_path(SMALL).exists()


def test_download_is_checked_converted_and_cached(isolated: Path, shared: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    published = _published(shared, SMALL)
    progress: list[tuple[int, int]] = []
    with _http_server(published.parent) as base:
        _point_at(monkeypatch, SMALL, base + published.name)
        path = pretrained.pretrained_checkpoint(
            SMALL, progress=lambda got, total: progress.append((got, total)))
    assert progress[-1] == (published.stat().st_size, published.stat().st_size)
    _, metadata = read_checkpoint(path)
    assert metadata.source_sha256 == sha256_of(published)
    assert os.listdir(isolated / 'cache' / 'downloads') == []  # the source is not kept


def test_corrupted_download_is_refused_and_nothing_is_cached(
        isolated: Path, shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published = _published(shared, SMALL)
    served = isolated / 'served'
    served.mkdir()
    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (served / published.name).write_bytes(bytes(data))
    with _http_server(served) as base:
        _point_at(monkeypatch, SMALL, base + published.name)
        with pytest.raises(MissingAssetError, match='sha256') as error:
            pretrained.pretrained_checkpoint(SMALL, progress=lambda got, total: None)
    assert 'corrupted' in str(error.value)
    leftovers = [p for p in (isolated / 'cache').rglob('*') if p.is_file()]
    assert leftovers == []


def test_offline_without_the_model_names_file_url_and_folder(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = pretrained.PRETRAINED[SMALL]
    with _http_server(isolated / 'shared') as base:  # serves nothing: 404
        _point_at(monkeypatch, SMALL, base + spec.tflite_file)
        with pytest.raises(MissingAssetError) as error:
            pretrained.pretrained_checkpoint(SMALL, progress=lambda got, total: None)
    message = str(error.value)
    assert spec.tflite_file in message and base + spec.tflite_file in message
    assert str(isolated / 'user_weights') in message and locations.WEIGHTS_PATH_ENV in message
    assert 'deeplab-ros-models fetch' in message
    assert [p for p in (isolated / 'cache').rglob('*') if p.is_file()] == []


def test_configure_fails_offline_with_the_message_and_recovers(
        isolated: Path, shared: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture) -> None:
    spec = pretrained.PRETRAINED[SMALL]
    _point_at(monkeypatch, SMALL, 'http://127.0.0.1:9/' + spec.tflite_file)  # nothing listens
    with node_under_test({'weights': f'pretrained:{SMALL}', 'input_size': 65}) as (node, tester):
        assert tester.lifecycle.change('configure') is False
        assert tester.lifecycle.state() == 'unconfigured'
        logged = capfd.readouterr().err
        assert 'configure failed' in logged and spec.tflite_file in logged
        assert 'http://127.0.0.1:9/' in logged and str(isolated / 'user_weights') in logged
        shutil.copy(_published(shared, SMALL), isolated / 'user_weights')
        assert tester.lifecycle.change('configure'), 'works once the file is in place'
