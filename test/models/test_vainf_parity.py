"""Our DeepLabV3+ MobileNetV2 computes what VainF DeepLabV3Plus-Pytorch computes.

The golden values were produced by VainF's own ``network/`` code (``deeplabv3plus_mobilenet``,
3 classes) with the seeded weights and inputs of ``reference_weights``; see
``test/data/README.md``. Odd and even input sizes at both output strides, to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deeplab_ros.core.models import build_model
from support.reference_weights import randomised_state, reference_input


GOLDEN = (Path(__file__).resolve().parents[1] / 'data'
          / 'vainf_deeplabv3plus_mobilenet_golden.npz')


@pytest.fixture(scope='module')
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.mark.parametrize('output_stride', [16, 8])
@pytest.mark.parametrize('size', [(129, 161), (128, 160)])
def test_logits_equal_vainf(golden: dict[str, np.ndarray], output_stride: int,
                            size: tuple[int, int]) -> None:
    model = build_model('deeplabv3plus_mobilenetv2', num_classes=3,
                        output_stride=output_stride).eval()
    model.load_state_dict(randomised_state(model.state_dict(), seed=13 + output_stride))
    height, width = size
    with torch.inference_mode():
        logits = model(reference_input(height, width, seed=height * 1000 + width))[0].numpy()
    name = f'os{output_stride}_{height}x{width}'
    np.testing.assert_allclose(logits[:, ::4, ::4], golden[name + '_grid'], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits.mean(axis=(1, 2)), golden[name + '_mean'], rtol=0,
                               atol=1e-4)
    assert np.array_equal(np.bincount(logits.argmax(0).ravel(), minlength=3),
                          golden[name + '_argmax_hist'])
