"""``deeplab-ros-convert``: make checkpoints with metadata from your TFLite or VainF files.

The pretrained models are listed and prepared by ``deeplab-ros-models`` (``list``, ``fetch``).

Examples::

    deeplab-ros-convert --tflite model.tflite --output model.pt
    deeplab-ros-convert --tflite model_uint8.tflite --output model.pt --quantized-activations
    deeplab-ros-convert --vainf best_deeplabv3plus_mobilenet_voc_os16.pth --output voc.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from deeplab_ros.core.labels import label_set_names
from deeplab_ros.tools.failures import option_for, report_failure, TOOL_FAILURES


#: Options that only the VainF conversion reads (the TFLite file says these itself).
VAINF_ONLY = ('output_stride', 'num_classes', 'labels')


def _parser() -> argparse.ArgumentParser:
    from deeplab_ros.core.weights.checkpoint import DEFAULT_INPUT_SIZE
    parser = argparse.ArgumentParser(prog='deeplab-ros-convert', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--tflite', type=Path,
                      help='a DeepLab MobileNetV2, MobileNet-EdgeTPU or MobileNetV3 .tflite '
                           'file')
    what.add_argument('--vainf', type=Path,
                      help='a VainF DeepLabV3Plus-Pytorch MobileNet checkpoint (model_state)')
    parser.add_argument('--output', type=Path, required=True, help='checkpoint to write (.pt)')
    parser.add_argument('--output-stride', type=int, choices=(8, 16),
                        help='with --vainf: output stride of the model (default 16)')
    parser.add_argument('--num-classes', type=int,
                        help='with --vainf: classes of the model (default: read from the '
                             'weights)')
    parser.add_argument('--labels',
                        help=f'with --vainf: class names/palette: {label_set_names()} or a '
                             'YAML file (default: the built-in set with as many classes)')
    parser.add_argument('--input-size', type=int, default=DEFAULT_INPUT_SIZE,
                        help='recommended input size stored in the metadata '
                             f'(default {DEFAULT_INPUT_SIZE})')
    parser.add_argument('--quantized-activations', action='store_true',
                        help="with --tflite (uint8 DeepLabV3+ or MobileNet-EdgeTPU files): "
                             "emulate the graph's uint8 activations, closer to its interpreter "
                             'but slower on the CPU (measured in docs/benchmarks.md, '
                             '"Activation emulation")')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.tflite:
        given = [option_for(parser, name) for name in VAINF_ONLY
                 if getattr(args, name) is not None]
        if given:
            parser.error(f'{", ".join(given)} {"apply" if len(given) > 1 else "applies"} '
                         'to --vainf only')
    elif args.quantized_activations:
        parser.error('--quantized-activations applies to --tflite only')
    try:
        from deeplab_ros.core.weights.checkpoint import save_checkpoint
        from deeplab_ros.core.weights.convert import convert_tflite_file, convert_vainf
        if args.tflite:
            print(convert_tflite_file(args.tflite, args.output, input_size=args.input_size,
                                      quantized_activations=args.quantized_activations))
            return 0
        model, metadata = convert_vainf(args.vainf, output_stride=args.output_stride or 16,
                                        num_classes=args.num_classes or None,
                                        labels=args.labels or '', input_size=args.input_size)
        print(save_checkpoint(args.output, model, metadata))
        return 0
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)


if __name__ == '__main__':
    sys.exit(main())
