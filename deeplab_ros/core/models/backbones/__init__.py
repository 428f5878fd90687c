"""Backbones: MobileNetV2 (and the layers the heads share), MobileNetV3-Large, EdgeTPU."""
