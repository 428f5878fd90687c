"""The rclpy layer: the segmentation node and the message <-> array conversions it uses."""
