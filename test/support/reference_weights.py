"""Seeded, framework-independent random weights and inputs for golden-value tests.

NumPy's PCG64 generator gives the same numbers on every platform and version, so the same
seed fills a state dict identically here and in the reference implementation that produced
the stored golden values (see ``test/data/README.md``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch


def randomised_state(state: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Return ``state`` with every float tensor drawn from ``seed``, keys in their order.

    Conv weights are He-normal, biases and batch-norm shifts and means small normals, batch-
    norm scales and variances uniform in [0.5, 1.5], so every layer matters in the output.
    """
    rng = np.random.default_rng(seed)
    result = {}
    for key, value in state.items():
        shape = tuple(value.shape)
        if not value.is_floating_point():
            result[key] = value.clone()
            continue
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            array = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif key.endswith(('running_var', '.weight')) and len(shape) == 1:
            array = rng.uniform(0.5, 1.5, shape)
        else:
            array = rng.standard_normal(shape) * 0.1
        result[key] = torch.from_numpy(array.astype(np.float32))
    return result


def reference_input(height: int, width: int, seed: int) -> torch.Tensor:
    """A ``[1, 3, height, width]`` standard-normal input drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((1, 3, height, width)).astype(np.float32))
