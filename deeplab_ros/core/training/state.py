"""Random-number-generator state capture and atomic saving of training states."""

from __future__ import annotations

import os
from pathlib import Path
import random
from typing import Any

import numpy as np
import torch

from deeplab_ros.core.files import atomic_write


def capture_rng_state() -> dict[str, Any]:
    """Return the state of Python's, NumPy's and PyTorch's global generators (CUDA too)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        'python': random.getstate(),
        'numpy': {'kind': kind, 'keys': torch.from_numpy(np.asarray(keys).astype(np.int64)),
                  'position': int(position), 'has_gauss': int(has_gauss),
                  'cached_gaussian': float(cached)},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore generators saved by :func:`capture_rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    saved = state['numpy']
    np.random.set_state((saved['kind'], saved['keys'].numpy().astype(np.uint32),
                         saved['position'], saved['has_gauss'], saved['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed Python, NumPy and PyTorch; optionally request deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matrix products.
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def atomic_save(payload: Any, path: Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    with atomic_write(path) as temporary:
        torch.save(payload, temporary)
    return path
