"""launch_testing: segment.launch.py brings the node to 'active' and it segments an image.

Runs under pytest with launch_testing's plugin (``make test``, ``colcon test``) or with
``launch_test``, against the installed package (the ament index of the environment).
"""

import os
import time
import unittest

from ament_index_python.packages import get_package_share_directory
import launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
import launch_testing
import launch_testing.actions
import launch_testing.asserts
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
import rclpy
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import LabelInfo
import yaml

NAMESPACE = 'launch_test'
NODE = f'/{NAMESPACE}/deeplab_segmentation'


@pytest.mark.launch_test
@pytest.mark.needs_launch
def generate_test_description():
    """Include the shipped launch file on the CPU with the profile for large images."""
    launch_file = os.path.join(get_package_share_directory('deeplab_ros'), 'launch',
                               'segment.launch.py')
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={'namespace': NAMESPACE, 'image': f'/{NAMESPACE}/camera/image_raw',
                          'camera_info': f'/{NAMESPACE}/camera/camera_info', 'device': 'cpu',
                          'use_fastdds_profile': 'true'}.items())
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class TestSegmentLaunch(unittest.TestCase):
    """While the launch runs."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('segment_launch_probe')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _wait_active(self, timeout: float = 120.0) -> int:
        client = self.node.create_client(GetState, f'{NODE}/get_state')
        self.assertTrue(client.wait_for_service(timeout_sec=60.0), 'no get_state service')
        deadline = time.monotonic() + timeout
        state = State.PRIMARY_STATE_UNKNOWN
        while time.monotonic() < deadline:
            future = client.call_async(GetState.Request())
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=5.0)
            if future.result() is not None:
                state = future.result().current_state.id
                if state == State.PRIMARY_STATE_ACTIVE:
                    break
            time.sleep(0.5)
        self.node.destroy_client(client)
        return state

    def _parameters(self, names: list) -> dict:
        client = self.node.create_client(GetParameters, f'{NODE}/get_parameters')
        self.assertTrue(client.wait_for_service(timeout_sec=60.0), 'no get_parameters service')
        future = client.call_async(GetParameters.Request(names=names))
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=30.0)
        self.node.destroy_client(client)
        self.assertIsNotNone(future.result(), 'get_parameters did not answer')
        return {name: parameter_value_to_python(value)
                for name, value in zip(names, future.result().values)}

    def test_given_arguments_become_parameters_and_empty_ones_leave_the_params_file(self):
        self.assertEqual(self._wait_active(), State.PRIMARY_STATE_ACTIVE)
        installed = os.path.join(get_package_share_directory('deeplab_ros'), 'config',
                                 'segment.yaml')
        with open(installed) as handle:
            defaults = yaml.safe_load(handle)['/**']['ros__parameters']
        values = self._parameters(['device', 'weights', 'variant', 'use_sim_time'])
        self.assertEqual(values['device'], 'cpu')  # given: device:=cpu
        self.assertEqual(values['weights'], defaults['weights'])  # empty: the file's
        self.assertEqual(values['variant'], defaults['variant'])
        self.assertIs(values['use_sim_time'], False)

    def test_node_activates_publishes_label_info_and_labels(self):
        self.assertEqual(self._wait_active(), State.PRIMARY_STATE_ACTIVE)
        label_info = []
        labels = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(LabelInfo, f'/{NAMESPACE}/segmentation/label_info',
                                      label_info.append, latched)
        self.node.create_subscription(Image, f'/{NAMESPACE}/segmentation/labels',
                                      labels.append, qos_profile_sensor_data)
        publisher = self.node.create_publisher(Image, f'/{NAMESPACE}/camera/image_raw', 10)
        frame = Image(height=120, width=160, encoding='rgb8', step=480)
        frame.header.frame_id = 'launch_test_camera'
        frame.data = np.full((120, 160, 3), 128, np.uint8).tobytes()
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not (labels and label_info):
            frame.header.stamp = self.node.get_clock().now().to_msg()
            publisher.publish(frame)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        self.assertTrue(label_info, 'no label info')
        self.assertTrue(labels, 'no labels')
        self.assertEqual((labels[0].width, labels[0].height, labels[0].encoding),
                         (160, 120, 'mono8'))
        self.assertEqual(labels[0].header.frame_id, 'launch_test_camera')


@launch_testing.post_shutdown_test()
class TestSegmentLaunchShutdown(unittest.TestCase):
    """After the launch is shut down (SIGINT)."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
