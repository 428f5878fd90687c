"""Scoring: labelled datasets, the confusion matrix and mIoU, and the one evaluation loop.

:func:`deeplab_ros.core.evaluation.evaluate.evaluate` is shared by the evaluation tool and the
trainer's validation.
"""
