"""Writing a file so that readers see the old one or the whole new one, never a part."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import tempfile

#: Image files read as frames or dataset images: the photo formats OpenCV reads.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')


@contextmanager
def atomic_write(path: str | Path, *, suffix: str = '.tmp') -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends, rename it onto ``path``.

    Write the content to the yielded path (by name: ``torch.save``, ``onnx.save``, ``open``).
    When the block raises, the temporary file is removed and ``path`` is left as it was (the
    old file or none). The new file is ``0o644`` (readable like an ordinary written file, not
    ``mkstemp``'s ``0o600``; the umask is not read: changing it to read it is not thread-safe).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
