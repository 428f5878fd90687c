"""``deeplab-ros-eval``: mIoU of a model on a labelled folder (flat, PASCAL VOC or ADE20K).

    deeplab-ros-eval --weights pretrained:deeplabv3_mnv2_dm05_float   # shared VOC images
    deeplab-ros-eval --weights pretrained:deeplabv3_mnv2_dm10_dequant --input-size 513
    deeplab-ros-eval --weights mine.pt --data ~/data/MyVOC --split val --labels classes.yaml
    deeplab-ros-eval --data ../shared/data/ade20k --output-stride 16   # NAME.jpg + NAME.png

Without ``--data`` the shared images that match the model's classes are used (PASCAL VOC
for 21-class models, ADE20K otherwise). ADE20K-style masks hold class ids with 0 = ignore;
ids the model does not predict (beyond its class count) are left out of the scores.

Prints per-image and per-class IoU and pixel accuracy; the last line is ``mIoU <value>``.
mIoU: for each class present in the ground truth, intersection / union summed over all
images (ignore pixels excluded), averaged over those classes.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import sys

import cv2
import numpy as np

from deeplab_ros.core.labels import label_set_names
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES
from deeplab_ros.tools.model_args import add_model_arguments, build_segmenter

#: Labelled images under the shared folder by built-in label set (None: there are none).
_SHARED_DATA: dict[str, str | None] = {
    'voc': 'data/voc_val', 'cityscapes': None, 'ade20k': 'data/ade20k', 'ade20k32': 'data/ade20k'}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='deeplab-ros-eval', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument('--labels', default='',
                        help=f"{label_set_names()} or a YAML class list (default: checkpoint's)")
    parser.add_argument('--data', type=Path, default=None,
                        help='dataset folder (default: <shared>/data/voc_val)')
    parser.add_argument('--split', default='val', help='split of a VOC-layout dataset')
    parser.add_argument('--input-size', type=int, default=0,
                        help="network input side (default: the checkpoint's)")
    parser.add_argument('--output-stride', type=int, default=0,
                        help="output stride, e.g. 8 or 16 (default: the checkpoint's)")
    parser.add_argument('--confusion-csv', type=Path, help='write the confusion matrix here')
    parser.add_argument('--overlays', type=Path, help='write overlay images to this folder')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    from deeplab_ros.core.evaluation.datasets import DatasetError, open_dataset
    from deeplab_ros.core.evaluation.evaluate import evaluate
    from deeplab_ros.core.labels import label_set_for, resolve_labels
    from deeplab_ros.core.weights.locations import shared_path

    try:
        labels = resolve_labels(args.labels) if args.labels else None
        segmenter = build_segmenter(args, input_size=args.input_size or None, labels=labels,
                                    output_stride=args.output_stride or None)
        data = args.data
        if data is None:
            built_in = label_set_for(segmenter.num_classes)
            folder = _SHARED_DATA.get(built_in.name if built_in else '', 'data/ade20k')
            if folder is None:
                raise DatasetError('the shared data holds no labelled Cityscapes images; pass '
                                   '--data DIR with N_image.png + N_target.png pairs whose '
                                   'masks use the Cityscapes palette', setting='data')
            data = shared_path(folder)
        dataset = open_dataset(data, segmenter.labels, args.split)
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)
    names = segmenter.labels.class_names
    print(f'model: {segmenter.metadata.variant} ({segmenter.metadata.source or args.weights})')
    print(f'data: {data}  input size: {segmenter.input_size}  output stride: '
          f'{segmenter.metadata.output_stride}  device: {segmenter.device}  '
          f'upsample: {segmenter.upsample}  backend: {segmenter.describe_backend()}')
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)

    def report(sample, result, single) -> None:
        present = ', '.join(f'{names[i]} {single.iou()[i]:.3f}'
                            for i in np.flatnonzero(single.present()))
        print(f'image {sample.name}: mIoU {single.mean_iou():.4f} '
              f'pixel acc {single.pixel_accuracy():.4f} [{present}]')
        if args.overlays and result.overlay is not None:
            cv2.imwrite(str(args.overlays / f'{sample.name}_overlay.png'),
                        result.overlay[..., ::-1])

    try:
        total = evaluate(segmenter, dataset, overlay=bool(args.overlays),
                         on_image=report).confusion
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)
    iou = total.iou()
    print('per-class IoU (classes present in the ground truth):')
    for index in np.flatnonzero(total.present()):
        print(f'  {names[index]:<16} {iou[index]:.4f}')
    if args.confusion_csv:
        args.confusion_csv.parent.mkdir(parents=True, exist_ok=True)
        with args.confusion_csv.open('w', newline='') as handle:
            writer = csv.writer(handle)
            writer.writerow(['truth \\ predicted', *names])
            for index, row in enumerate(total.matrix):
                writer.writerow([names[index], *row.tolist()])
    print(f'pixel accuracy {total.pixel_accuracy():.4f}')
    print(f'mIoU {total.mean_iou():.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
