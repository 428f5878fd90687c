"""mIoU: the metric against a hand computation, and deeplab-ros-eval on the VOC images."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from deeplab_ros.core.metrics import ConfusionMatrix

REPO = Path(__file__).resolve().parents[1]


def test_confusion_matrix_matches_a_hand_computation() -> None:
    target_a = np.array([[0, 0, 1], [1, 255, 2]])
    guess_a = np.array([[0, 1, 1], [1, 2, 0]])
    target_b = np.array([[2, 2], [255, 0]])
    guess_b = np.array([[2, 0], [1, 0]])
    matrix = ConfusionMatrix(3)
    matrix.update(guess_a, target_a)
    matrix.update(guess_b, target_b)
    # Counted pixels (ignore 255 dropped): truth->guess pairs
    # a: 0->0, 0->1, 1->1, 1->1, 2->0 ; b: 2->2, 2->0, 0->0
    # class 0: I=2, truth 3 (a:2, b:1), pred 4 (a:2, b:2) -> U=5 ; class 1: I=2, U=3 ;
    # class 2: I=1, truth 3, pred 1 -> U=3
    assert matrix.iou() == pytest.approx([2 / 5, 2 / 3, 1 / 3])
    assert matrix.mean_iou() == pytest.approx((2 / 5 + 2 / 3 + 1 / 3) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(5 / 8)


def test_classes_absent_from_the_ground_truth_do_not_count() -> None:
    matrix = ConfusionMatrix(4)
    matrix.update(np.array([0, 0, 3, 1]), np.array([0, 0, 1, 1]))
    # class 3 is predicted but never true: excluded from the mean; class 1: I=1, U=2.
    assert matrix.mean_iou() == pytest.approx((1.0 + 0.5) / 2)
    assert np.isnan(matrix.iou()[2])


def _eval(*arguments: str) -> list[str]:
    completed = subprocess.run([sys.executable, '-m', 'deeplab_ros.tools.evaluate', *arguments],
                               cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip().splitlines()


def test_eval_float_dm05_model(shared: Path, tmp_path: Path) -> None:
    lines = _eval('--weights', 'pretrained:deeplabv3_mnv2_dm05_float', '--input-size', '513',
                  '--confusion-csv', str(tmp_path / 'confusion.csv'))
    assert lines[-1].startswith('mIoU ')
    assert float(lines[-1].split()[1]) >= 0.78
    assert any(line.strip().startswith('aeroplane') for line in lines)
    assert (tmp_path / 'confusion.csv').read_text().startswith('truth \\ predicted,background')


def test_eval_dequantized_dm10_model_matches_the_original_uint8_model(shared: Path) -> None:
    # The uint8 model run in Google's own interpreter scores 0.777 on these ten images
    # (plain 513 input, arg-max); the dequantized conversion must score the same or better.
    lines = _eval('--weights', 'pretrained:deeplabv3_mnv2_dm10_dequant', '--input-size', '513')
    assert float(lines[-1].split()[1]) >= 0.775


def test_eval_reports_a_missing_dataset(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, '-m', 'deeplab_ros.tools.evaluate', '--data', str(tmp_path / 'x')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 1 and 'dataset folder not found' in completed.stderr
