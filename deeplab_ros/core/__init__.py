"""The ROS-free perception core: models, checkpoints, the Segmenter, labels, datasets, scoring.

Nothing here imports rclpy or ROS messages, so the core runs without a ROS install.
"""
