r"""``deeplab-ros-train``: fine-tune a segmentation model on a PASCAL VOC layout dataset.

Example::

    deeplab-ros-train --dataset ~/data/mydataset --labels ~/data/mydataset/classes.yaml \
        --output runs/mine --epochs 30 --batch-size 8 --crop-size 513 --seed 1

Writes into ``--output``: ``train_state.pt`` (resume with ``--resume``), ``model_last.pt`` and
``model_best.pt`` (checkpoints with metadata: the node's ``weights`` parameter takes them
as they are) and ``history.json`` (loss per step, validation scores per epoch).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
from pathlib import Path
import sys

from deeplab_ros.core.labels import label_set_names
from deeplab_ros.core.training.config import TrainConfig
from deeplab_ros.core.weights.checkpoint import DEFAULT_INPUT_SIZE
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES

DEFAULTS = TrainConfig(dataset='', output_dir='')


def _model_option(text: str) -> tuple[str, float | int | str]:
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'--model-option expects KEY=VALUE, got {text!r}')
    key, value = text.split('=', 1)
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog='deeplab-ros-train', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group('data')
    data.add_argument('--dataset', type=Path,
                      help='root of a PASCAL VOC layout dataset (JPEGImages/, '
                      'SegmentationClass/, ImageSets/Segmentation/{train,val}.txt)')
    data.add_argument('--labels', default=DEFAULTS.labels,
                      help=f'class list: {label_set_names()} or a YAML file '
                      '(names, colors, ignore_index)')
    data.add_argument('--train-split', default=DEFAULTS.train_split)
    data.add_argument('--val-split', default=DEFAULTS.val_split,
                      help="validation list name; '' disables validation")
    model = parser.add_argument_group('model')
    model.add_argument('--variant', default=DEFAULTS.variant,
                       help='registered model name (see deeplab_ros.core.models)')
    model.add_argument('--output-stride', type=int, default=DEFAULTS.output_stride,
                       choices=(8, 16, 32))
    model.add_argument('--model-option', type=_model_option, action='append', default=[],
                       metavar='KEY=VALUE', help='extra builder option, e.g. depth_multiplier=0.5')
    model.add_argument('--init', default=DEFAULTS.init,
                       help='backbone (pretrained MobileNetV2), checkpoint:PATH, or none')
    optim = parser.add_argument_group('optimisation')
    optim.add_argument('--epochs', type=int, default=DEFAULTS.epochs)
    optim.add_argument('--max-steps', type=int, default=DEFAULTS.max_steps,
                       help='cap the schedule at this many steps (0: epochs x steps per epoch)')
    optim.add_argument('--stop-after', type=int, default=DEFAULTS.stop_after,
                       help='stop after this many steps, resumable later (0: run to the end)')
    optim.add_argument('--batch-size', type=int, default=DEFAULTS.batch_size)
    optim.add_argument('--crop-size', type=int, default=DEFAULTS.crop_size)
    optim.add_argument('--scale-range', type=float, nargs=2, default=DEFAULTS.scale_range,
                       metavar=('MIN', 'MAX'), help='random resize factor range')
    optim.add_argument('--flip-probability', type=float, default=DEFAULTS.flip_probability)
    optim.add_argument('--lr', type=float, default=DEFAULTS.lr)
    optim.add_argument('--backbone-lr-factor', type=float, default=DEFAULTS.backbone_lr_factor)
    optim.add_argument('--momentum', type=float, default=DEFAULTS.momentum)
    optim.add_argument('--weight-decay', type=float, default=DEFAULTS.weight_decay)
    optim.add_argument('--poly-power', type=float, default=DEFAULTS.poly_power)
    run = parser.add_argument_group('run')
    run.add_argument('--output', type=Path, help='output folder (states, checkpoints, history)')
    run.add_argument('--resume', type=Path,
                     help='continue from a train_state.pt (run settings come from the state)')
    run.add_argument('--device', default=DEFAULTS.device, help="'auto', 'cpu', 'cuda', 'cuda:N'")
    run.add_argument('--no-amp', dest='amp', action='store_false',
                     help='disable mixed precision on CUDA')
    run.add_argument('--workers', type=int, default=DEFAULTS.workers)
    run.add_argument('--seed', type=int, default=None,
                     help='seed for a reproducible run (default: random, recorded in the state)')
    run.add_argument('--nondeterministic', dest='deterministic', action='store_false',
                     help='allow non-deterministic (faster) kernels')
    run.add_argument('--val-size', type=int, default=DEFAULTS.val_size,
                     help="network input side for validation (0: the checkpoint's input size)")
    run.add_argument('--val-every', type=int, default=DEFAULTS.val_every,
                     help='validate every N epochs (0: only at the end)')
    run.add_argument('--save-every', type=int, default=DEFAULTS.save_every,
                     help='also save a resumable state every N steps (0: once per epoch)')
    run.add_argument('--input-size', type=int, default=DEFAULTS.input_size,
                     help='inference input side recorded in the checkpoint '
                          f'(0: {DEFAULT_INPUT_SIZE})')
    run.add_argument('--no-progress', dest='progress', action='store_false')
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Turn parsed arguments into a :class:`TrainConfig` for a new run."""
    return TrainConfig(
        dataset=str(args.dataset), output_dir=str(args.output), labels=args.labels,
        variant=args.variant, output_stride=args.output_stride,
        model_options=dict(args.model_option), init=args.init, epochs=args.epochs,
        max_steps=args.max_steps, stop_after=args.stop_after, batch_size=args.batch_size,
        crop_size=args.crop_size, scale_range=tuple(args.scale_range),
        flip_probability=args.flip_probability, lr=args.lr,
        backbone_lr_factor=args.backbone_lr_factor, momentum=args.momentum,
        weight_decay=args.weight_decay, poly_power=args.poly_power, device=args.device,
        amp=args.amp, workers=args.workers, seed=args.seed, deterministic=args.deterministic,
        train_split=args.train_split, val_split=args.val_split, val_size=args.val_size,
        val_every=args.val_every, save_every=args.save_every, input_size=args.input_size,
        progress=args.progress)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deeplab-ros-train``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from deeplab_ros.core.training.trainer import Trainer

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.resume is not None:
            trainer = Trainer.resume(
                args.resume, log=log, output_dir=str(args.output) if args.output else None,
                stop_after=args.stop_after, workers=args.workers, device=args.device,
                amp=args.amp, progress=args.progress, save_every=args.save_every)
            log(f'resuming at step {trainer.step}/{trainer.total_steps} from {args.resume}')
        else:
            if args.dataset is None or args.output is None:
                parser.error('--dataset and --output are required (or --resume STATE)')
            trainer = Trainer(config_from_args(args), log=log)
            log(f'initialised: {trainer.init_report}')
        log(f'{trainer.config.variant}, {len(trainer.labels)} classes, '
            f'{len(trainer.train_samples)} training images, {trainer.steps_per_epoch} '
            f'steps/epoch, {trainer.total_steps} steps, device {trainer.device}, '
            f'seed {trainer.config.seed}')
        result = trainer.fit()
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)
    history = Path(trainer.config.output_dir) / 'history.json'
    history.write_text(json.dumps({'losses': result.losses,
                                   'validations': result.validations,
                                   'step': result.step, 'total_steps': result.total_steps,
                                   'seed': trainer.config.seed}, indent=1))
    print(json.dumps({'step': result.step, 'total_steps': result.total_steps,
                      'finished': result.finished, 'last_model': str(result.last_model),
                      'best_model': str(result.best_model) if result.best_model else None,
                      'state': str(result.state_path),
                      'final_loss': result.losses[-1] if result.losses else None,
                      'validation': result.validations[-1] if result.validations else None}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
