"""Launch the DeepLab segmentation lifecycle node, configured and activated on start.

    ros2 launch deeplab_ros segment.launch.py image:=/front/image_raw device:=cuda rviz:=true

The node is a managed lifecycle node. Where launch_ros's ``LifecycleNode`` has ``autostart``
(Jazzy since launch_ros 0.26.7, Kilted, Rolling) it brings itself to 'active'; on older
launch_ros (Humble) the same is done with a configure request on process start and an
activate request once the node reports 'inactive'.

Launch arguments left empty are not passed to the node, so the parameters file decides.
"""

import inspect
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction
from launch.actions import RegisterEventHandler, SetEnvironmentVariable
from launch.actions import UnsetEnvironmentVariable
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from deeplab_ros.ros.dds_profile import (
    LARGE_IMAGE_PROFILE, PROFILE_VARIABLES, TRANSPORTS_VARIABLE)

PACKAGE = 'deeplab_ros'
EXECUTABLE = 'segmentation_node'
NODE_NAME = 'deeplab_segmentation'
PARAMS_FILE = 'segment.yaml'
RVIZ_CONFIG = 'segment.rviz'

# (name, default, description): the launch arguments, as documented in docs/launch.md.
LAUNCH_ARGUMENTS = (
    ('namespace', '', 'Namespace of the node and its topics (e.g. front_camera).'),
    ('image', '/camera/image_raw',
     'Input image topic (sensor_msgs/Image) remapped onto the node\'s "image" input.'),
    ('camera_info', '/camera/camera_info',
     'Input CameraInfo topic remapped onto the node\'s "camera_info" input.'),
    ('depth', '',
     'Input depth topic (registered to the colour camera; used with use_depth) remapped onto '
     'the node\'s "depth" input; empty = not remapped.'),
    ('params_file', '',
     'Parameters file of the node; empty = the installed config/segment.yaml.'),
    ('weights', '',
     'Checkpoint: "pretrained", "pretrained:NAME" or a .pt path; empty = params file.'),
    ('variant', '',
     'Model variant for checkpoints without metadata (e.g. deeplabv3plus_mobilenetv2); '
     'empty = params file.'),
    ('device', '', 'Inference device: auto, cpu, cuda or cuda:N; empty = params file.'),
    ('use_sim_time', 'false', 'Use the /clock topic (e.g. when playing bags with --clock).'),
    ('rviz', 'false', 'Also start RViz with config/segment.rviz (overlay and colour mask).'),
    ('use_fastdds_profile', 'false',
     'Apply the shipped Fast DDS profile for large images (32 MiB shared memory + UDP on '
     'localhost) by setting FASTRTPS_DEFAULT_PROFILES_FILE (Fast DDS 2.x: Humble, Jazzy) '
     'and FASTDDS_DEFAULT_PROFILES_FILE (Fast DDS 3.x: Kilted+) and unsetting '
     'FASTDDS_BUILTIN_TRANSPORTS.'),
)

# Launch arguments passed to the node as parameters only when not empty.
OPTIONAL_PARAMETER_ARGUMENTS = ('weights', 'variant', 'device')


def lifecycle_autostart_supported() -> bool:
    """True when this launch_ros's LifecycleNode takes ``autostart`` (Jazzy 0.26.7+)."""
    return 'autostart' in inspect.signature(LifecycleNode.__init__).parameters


def _share_file(*parts: str) -> str:
    return os.path.join(get_package_share_directory(PACKAGE), *parts)


def _node_actions(context: LaunchContext) -> list:
    """Build the node with only the parameters and remappings that were given."""
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    params_file = value('params_file') or _share_file('config', PARAMS_FILE)
    overrides: dict = {'use_sim_time': value('use_sim_time').lower() in ('true', '1', 'yes')}
    for name in OPTIONAL_PARAMETER_ARGUMENTS:
        if value(name):
            overrides[name] = value(name)
    remappings = [(port, value(port)) for port in ('image', 'camera_info', 'depth')
                  if value(port)]

    node_arguments = dict(
        package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME, namespace=value('namespace'),
        parameters=[params_file, overrides], remappings=remappings, output='screen',
        emulate_tty=True,
        # The node stops cleanly with the launch process, even when that is terminated by a
        # signal launch does not forward (SIGTERM to `ros2 launch`).
        additional_env={'DEEPLAB_ROS_STOP_WITH_PARENT': '1'})
    if lifecycle_autostart_supported():
        return [LifecycleNode(autostart=True, **node_arguments)]

    node = LifecycleNode(**node_arguments)
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(node),
        transition_id=Transition.TRANSITION_CONFIGURE))
    activate_when_inactive = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_ACTIVATE))]))
    configure_on_start = RegisterEventHandler(OnProcessStart(
        target_action=node, on_start=[configure]))
    return [activate_when_inactive, configure_on_start, node]


def generate_launch_description() -> LaunchDescription:
    """The segmentation node (configured + activated), optional RViz and DDS profile."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in LAUNCH_ARGUMENTS]
    # The profile applied whole, as deeplab_ros.ros.dds_profile says: both profile variables,
    # and no built-in transports in place of the profile's.
    profile = _share_file('config', LARGE_IMAGE_PROFILE)
    use_profile = IfCondition(LaunchConfiguration('use_fastdds_profile'))
    environment = [SetEnvironmentVariable(name, profile, condition=use_profile)
                   for name in PROFILE_VARIABLES]
    environment.append(UnsetEnvironmentVariable(TRANSPORTS_VARIABLE, condition=use_profile))
    # In the node's namespace, with the input remapped like the node's: the relative topics of
    # config/segment.rviz then name the node's outputs whatever the namespace.
    rviz = Node(
        package='rviz2', executable='rviz2', name='deeplab_rviz', output='screen',
        namespace=LaunchConfiguration('namespace'),
        remappings=[('image', LaunchConfiguration('image'))],
        arguments=['-d', PathJoinSubstitution([get_package_share_directory(PACKAGE), 'config',
                                               RVIZ_CONFIG])],
        parameters=[{'use_sim_time': LaunchConfiguration('use_sim_time')}],
        condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription(
        arguments + environment + [OpaqueFunction(function=_node_actions), rviz])
