"""Checks shared by the pretrained-model tests: a checkpoint is never loaded as another model."""

from __future__ import annotations

from pathlib import Path
import re

import pytest
import torch

from deeplab_ros.core.weights.checkpoint import CheckpointError, load_model


def assert_loaded_only_as_its_variant(path: Path, variant: str, other: str,
                                      tmp_path: Path) -> Path:
    """Check that ``path`` (a ``variant`` checkpoint) is refused as ``other``, by name.

    With its metadata, the error names both variants; as a plain state dict (no metadata),
    the error says which variant its keys look like.

    Returns:
        The plain state-dict file written for the second check.
    """
    with pytest.raises(CheckpointError, match=f"variant='{re.escape(variant)}' checkpoint, "
                                              f"but variant='{re.escape(other)}'"):
        load_model(path, variant=other)
    plain = tmp_path / f'{variant}_state.pt'
    torch.save(torch.load(path, weights_only=True)['model_state'], plain)
    with pytest.raises(CheckpointError, match=f"looks like variant '{re.escape(variant)}'"):
        load_model(plain, variant=other)
    return plain
