"""Helpers shared by the test layers: in-process nodes, bags, RGB-D frames, datasets,
checkpoints, reference weights and test-only message encoders."""
