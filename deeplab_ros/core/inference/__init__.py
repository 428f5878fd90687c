"""Running a model on frames: device, pre-processing, network forward, post-processing.

:class:`~.segmenter.Segmenter` reads top to bottom through this folder: it resolves the device
(:mod:`.device`), resizes and normalises frames (:mod:`.preprocess`), runs the network on a
backend (:mod:`.backends`: PyTorch, or ONNX Runtime on a cached export, :mod:`.onnx_export`)
and turns logits into labels at each frame's resolution (:mod:`.postprocess`).
"""
