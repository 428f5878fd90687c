"""The model options the console tools share, and the segmenter built from them.

``--weights`` and ``--variant`` name the model; ``--device``, ``--upsample`` and ``--backend``
say how it runs (each tool adds those it uses). :func:`build_segmenter` turns them into a
:class:`~deeplab_ros.core.inference.segmenter.Segmenter` the way the node builds its own.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TYPE_CHECKING

from deeplab_ros.core.inference.backends import BACKENDS
from deeplab_ros.core.inference.postprocess import UPSAMPLE_MODES

if TYPE_CHECKING:
    from deeplab_ros.core.inference.segmenter import Segmenter

BACKEND_HELP = ('network forward: auto (onnxruntime on the CPU when installed, else torch), '
                'torch or onnxruntime (default auto)')

_fallback_reported = False


def add_model_arguments(parser: argparse.ArgumentParser, *, device: bool = True,
                        upsample: bool = True, backend: bool = True) -> None:
    """Add ``--weights`` and ``--variant``, and the run options asked for, to ``parser``."""
    parser.add_argument('--weights', default='pretrained',
                        help="'pretrained', 'pretrained:NAME' or a checkpoint path")
    parser.add_argument('--variant', default='', help='model variant for plain state dicts')
    if device:
        parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    if upsample:
        parser.add_argument('--upsample', default='exact', choices=UPSAMPLE_MODES,
                            help="how labels reach the frame's resolution: exact (default) or "
                                 'dense (the network resizes its logits to its input; for '
                                 'comparison)')
    if backend:
        parser.add_argument('--backend', default='auto', choices=BACKENDS, help=BACKEND_HELP)


def build_segmenter(args: argparse.Namespace, **options: Any) -> 'Segmenter':
    """Build the segmenter of the parsed model options.

    ``options`` (e.g. ``input_size``) add to them or override them. An ``auto`` backend
    fallback is reported once on stderr.

    Raises:
        The errors of :meth:`Segmenter.from_checkpoint` (missing or wrong weights, device).
    """
    from deeplab_ros.core.inference.segmenter import Segmenter  # noqa: PLC0415

    settings: dict[str, Any] = {'variant': args.variant or None}
    for name in ('device', 'upsample', 'backend'):
        if hasattr(args, name):
            settings[name] = getattr(args, name)
    settings.update(options)
    segmenter = Segmenter.from_checkpoint(args.weights, **settings)
    report_fallback_once(segmenter.backend_note)
    return segmenter


def report_fallback_once(note: str) -> None:
    """Print an ``auto`` backend fallback note to stderr the first time one comes."""
    global _fallback_reported
    if note and not _fallback_reported:
        _fallback_reported = True
        print(note, file=sys.stderr)
