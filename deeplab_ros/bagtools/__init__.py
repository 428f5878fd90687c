"""Recorded camera bags: make them from footage, play them into ROS, record topics, inspect.

Bags are rosbag2 folders (mcap or sqlite3 storage, metadata version 8 or 9) read and written
with the pure-Python ``rosbags`` library, so making and inspecting bags needs no ROS install:

- :mod:`.sources`: frames from a video file or an image folder;
- :mod:`.writer`: bags of sensor_msgs/Image + CameraInfo;
- :mod:`.info`: summaries and message iteration (bags from ``ros2 bag record`` too);
- :mod:`.message_definitions`: message definitions and RIHS01 type hashes for connections.

With rclpy: :mod:`.rclpy_types` (message classes; QoS to and from bag metadata),
:mod:`.player` (publish a bag with its timing), :mod:`.recorder` (topics into a bag) and
:mod:`.pipeline` (a bag through the segmentation node process and back).
"""
