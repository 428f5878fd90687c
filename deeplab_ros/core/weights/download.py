"""Download a file over HTTP(S) with a sha256 check and a progress bar (standard library only)."""

from __future__ import annotations

import hashlib
from pathlib import Path
import sys
from typing import Callable, IO
import urllib.error
import urllib.request

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.files import atomic_write

_CHUNK = 1 << 16

#: Called with (bytes received, total bytes or 0 when unknown).
ProgressCallback = Callable[[int, int], None]


class DownloadError(ConfigurationError):
    """A download failed (network, HTTP status, size or checksum); nothing was kept."""


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, *, what: str = 'the expected file',
                  error: type[ConfigurationError] = DownloadError, setting: str = '') -> str:
    """Return the hex sha256 of ``path`` after checking it is ``expected``.

    An empty ``expected`` checks nothing (the digest is still returned).

    Raises:
        ConfigurationError: ``error`` (``DownloadError`` by default), with ``setting``, when
            the file has another sha256: "``path`` is not ``what``: its sha256 is ...".
    """
    digest = sha256_of(path)
    if expected and digest != expected.lower():
        raise error(f'{path} is not {what}: its sha256 is {digest}, expected {expected}',
                    setting=setting)
    return digest


def text_progress(label: str, stream: IO[str] | None = None) -> ProgressCallback:
    """A progress bar on ``stream`` (stderr): ``label [#####     ]  45% 1.2/2.7 MB``."""
    out = stream or sys.stderr
    shown = {'percent': -1}

    def report(received: int, total: int) -> None:
        if total:
            percent = min(100, received * 100 // total)
            if percent == shown['percent']:
                return
            shown['percent'] = percent
            bar = '#' * (percent // 5)
            out.write(f'\r{label} [{bar:<20}] {percent:3d}% '
                      f'{received / 1e6:.1f}/{total / 1e6:.1f} MB')
        else:
            out.write(f'\r{label} {received / 1e6:.1f} MB')
        if total and received >= total:
            out.write('\n')
        out.flush()
    return report


def download(url: str, target: str | Path, sha256: str, *, timeout: float = 30.0,
             progress: ProgressCallback | None = None) -> Path:
    """Download ``url`` to ``target`` if its sha256 is ``sha256``.

    The data goes to a temporary file beside ``target`` that is renamed only after the
    checksum matched; on any failure it is removed and :class:`DownloadError` names the URL
    and the cause.
    """
    target = Path(target)
    digest = hashlib.sha256()
    with atomic_write(target, suffix='.download') as temporary:
        with open(temporary, 'wb') as stream:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = int(response.headers.get('Content-Length') or 0)
                    received = 0
                    for chunk in iter(lambda: response.read(_CHUNK), b''):
                        stream.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if progress:
                            progress(received, total)
            except (urllib.error.URLError, OSError, ValueError) as error:
                reason = getattr(error, 'reason', error)
                raise DownloadError(f'Could not download {url}: {reason}') from error
        if total and received != total:
            raise DownloadError(f'Could not download {url}: got {received} of {total} bytes')
        actual = digest.hexdigest()
        if actual != sha256.lower():
            raise DownloadError(f'Refused {url}: its sha256 is {actual}, expected {sha256} '
                                '(corrupted or a different file); nothing was kept.')
    return target
