"""The node's streaming primitives, free of ROS: frame scheduling, stamp matching, statistics.

:mod:`.frame_scheduler` keeps the newest frame per stream and paces the worker,
:mod:`.stamp_matcher` pairs frames with depth images by stamp, and :mod:`.statistics` counts,
rates and times what the node reports on /diagnostics. They import the standard library and
NumPy only (a test asserts it) and are unit-tested on fake clocks.
"""
