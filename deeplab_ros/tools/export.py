r"""``deeplab-ros-export``: write a model as an ONNX file with its metadata.

    deeplab-ros-export --output deeplab.onnx                     # default model, its input size
    deeplab-ros-export --weights pretrained:deeplabv3_mnv2_dm10_dequant --input-size 513 \
        --batch-size 2 --output voc_dm10.onnx
    deeplab-ros-export --weights mine.pt --dynamic-batch --output mine.onnx
    deeplab-ros-export --full-resolution --output deeplab_full.onnx  # logits at S x S
    trtexec --onnx=deeplab.onnx --fp16 --saveEngine=deeplab.plan  # TensorRT engine from it

The graph's input ``input`` is float32 ``[N, 3, S, S]``: RGB scaled to [0, 1], then
``(x - mean) / std`` per channel. Its output ``logits`` is the graph the node runs: logits at
the network's own resolution, ``[N, classes, h, w]`` (h = w = S / 4 rounded up for the
DeepLabV3+ models); resized bilinearly to the input in the convention the metadata names
(``logits_resize``: ``align_corners``, ``half_pixel`` or ``tf_legacy``), their arg-max over
the channels gives the class ids. With ``--full-resolution`` the graph ends in that resize and
``logits`` is ``[N, classes, S, S]``. The file's metadata (``metadata_props``) lists the class
names, palette, mean, std, input size, output stride, precision, batch size, ``logits_size``
(``[h, w]``) and ``logits_resize``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES
from deeplab_ros.tools.model_args import add_model_arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='deeplab-ros-export', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, device=False, upsample=False, backend=False)
    parser.add_argument('--output', type=Path, required=True, help='ONNX file to write')
    parser.add_argument('--input-size', type=int, default=0,
                        help="square input side (default: the checkpoint's recommendation)")
    parser.add_argument('--batch-size', type=int, default=1,
                        help='batch size of the graph (default 1; e.g. one per camera)')
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='leave the batch dimension dynamic (named "batch")')
    parser.add_argument('--half', action='store_true',
                        help='float16 graph (traced on CUDA when present); for TensorRT prefer '
                             'a float32 file and trtexec --fp16')
    parser.add_argument('--full-resolution', action='store_true',
                        help='end the graph with the resize of the logits to the input size '
                             '(default: logits at the network\'s own resolution, as the node '
                             'runs it)')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be at least 1')
    import torch

    from deeplab_ros.core.inference.onnx_export import (
        describe, export_onnx, ExportSettings, read_onnx_metadata)
    from deeplab_ros.core.inference.preprocess import check_input_size
    from deeplab_ros.core.weights.checkpoint import load_model
    from deeplab_ros.core.weights.pretrained import resolve_weights

    try:
        if args.input_size:
            check_input_size(args.input_size)
        model, metadata = load_model(resolve_weights(args.weights),
                                     variant=args.variant or None)
        settings = ExportSettings(input_size=args.input_size or metadata.input_size,
                                  batch_size=args.batch_size,
                                  dynamic_batch=args.dynamic_batch, half=args.half,
                                  full_resolution=args.full_resolution)
        device = torch.device('cuda' if args.half and torch.cuda.is_available() else 'cpu')
        path = export_onnx(model, metadata, args.output, settings=settings, device=device)
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)
    print(f'{path}: {describe(read_onnx_metadata(path))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
