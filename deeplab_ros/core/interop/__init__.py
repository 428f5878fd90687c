"""Formats and ontologies of the stacks that consume the segmentation (ROS-free)."""
