"""The launch file and the shipped configuration files.

The launch file is loaded with the real launch system (its declared arguments are the
documented ones) and its files are installed by setup.py; what it starts, with which
parameters and remappings, and the configure -> activate chain are checked by running it for
real: test/system/launch/test_segment_launch.py (launch_testing, against the installed package) and
test_install.py (``ros2 launch`` from a colcon install space).
"""

from __future__ import annotations

import ast
from pathlib import Path
import re
import time
import types
from xml.etree import ElementTree

import pytest
import yaml

from support.bags import best_effort_image_transfer, ros_environment
from deeplab_ros.ros.dds_profile import (
    LARGE_IMAGE_PROFILE, large_image_dds_env, PROFILE_VARIABLES, TRANSPORTS_VARIABLE)
from deeplab_ros.ros.spinning import SpunNode, wait_until

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / 'launch' / 'segment.launch.py'
PARAMS_FILE = ROOT / 'config' / 'segment.yaml'
RVIZ_FILE = ROOT / 'config' / 'segment.rviz'
PROFILE_FILE = ROOT / 'config' / 'fastdds_large_images.xml'


def _node_parameter_specs() -> tuple:
    from deeplab_ros.ros.parameters import SPECS  # noqa: PLC0415
    return SPECS


DOCUMENTED_ARGUMENTS = ('namespace', 'image', 'camera_info', 'depth', 'params_file',
                        'weights', 'variant', 'device', 'use_sim_time', 'rviz',
                        'use_fastdds_profile')

# Parameters every rclpy node has (not the node's own).
ROS_OWN_PARAMETERS = ('use_sim_time', 'start_type_description_service')

# The node's parameters and defaults, as the node declares them.
NODE_PARAMETERS = {spec.name: spec.default for spec in _node_parameter_specs()}


def _launch_module_constants() -> dict[str, object]:
    """The launch file's literal module constants (package, executable, file names)."""
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    constants = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            try:
                constants[statement.targets[0].id] = ast.literal_eval(statement.value)
            except ValueError:
                continue
    return constants


def _real_launch_module() -> types.ModuleType:
    """The launch file loaded by the launch system's own loader (as ``ros2 launch`` does)."""
    pytest.importorskip('launch_ros.actions', reason='needs the ROS 2 launch system')
    from launch.launch_description_sources.python_launch_file_utilities import (  # noqa: PLC0415
        load_python_launch_file_as_module)
    return load_python_launch_file_as_module(str(LAUNCH_FILE))


def test_launch_arguments_are_the_documented_ones() -> None:
    from launch import LaunchContext  # noqa: PLC0415
    from launch.utilities import perform_substitutions  # noqa: PLC0415

    module = _real_launch_module()
    arguments = module.generate_launch_description().get_launch_arguments()
    assert tuple(argument.name for argument in arguments) == DOCUMENTED_ARGUMENTS
    context = LaunchContext()
    defaults = {argument.name: perform_substitutions(context, argument.default_value)
                for argument in arguments}
    assert all(argument.description for argument in arguments)  # `ros2 launch -s` shows them
    # Arguments that override the parameters file default to '' (= not passed).
    for name in module.OPTIONAL_PARAMETER_ARGUMENTS:
        assert defaults[name] == '', name
    assert defaults['use_fastdds_profile'] == 'false' and defaults['rviz'] == 'false'


def _node_remappings(module: types.ModuleType, given: dict[str, str]) -> list[tuple[str, str]]:
    """The remappings of the node the launch file starts with the arguments ``given``."""
    from launch import LaunchContext  # noqa: PLC0415
    from launch.utilities import perform_substitutions  # noqa: PLC0415
    from launch_ros.actions import LifecycleNode  # noqa: PLC0415

    context = LaunchContext()
    for name, default, _ in module.LAUNCH_ARGUMENTS:
        context.launch_configurations[name] = given.get(name, default)
    node = next(action for action in module._node_actions(context)  # noqa: SLF001
                if isinstance(action, LifecycleNode))
    rules = node._Node__remappings  # noqa: SLF001 - launch_ros keeps them private until run
    return [(perform_substitutions(context, source), perform_substitutions(context, target))
            for source, target in rules]


def test_input_arguments_become_remappings_and_an_empty_depth_is_left_out() -> None:
    module = _real_launch_module()
    given = {'params_file': str(PARAMS_FILE), 'image': '/cam/color', 'camera_info': '/cam/info'}
    assert _node_remappings(module, given) == [('image', '/cam/color'),
                                               ('camera_info', '/cam/info')]
    assert _node_remappings(module, {**given, 'depth': '/cam/depth'}) == [
        ('image', '/cam/color'), ('camera_info', '/cam/info'), ('depth', '/cam/depth')]


FASTDDS_VARIABLES = (*PROFILE_VARIABLES, TRANSPORTS_VARIABLE)


def _launch_fastdds_environment(module: types.ModuleType, use_profile: str,
                                monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """The Fast DDS variables after the launch file's environment actions have run.

    Launch's environment is this process's (``os.environ``): ``monkeypatch`` restores it.
    """
    from launch import LaunchContext  # noqa: PLC0415
    from launch.actions import SetEnvironmentVariable, UnsetEnvironmentVariable  # noqa: PLC0415

    entities = module.generate_launch_description().entities
    monkeypatch.setenv(TRANSPORTS_VARIABLE, 'UDPv4')
    monkeypatch.setenv(PROFILE_VARIABLES[0], 'stale.xml')
    monkeypatch.delenv(PROFILE_VARIABLES[1], raising=False)
    context = LaunchContext()
    context.launch_configurations['use_fastdds_profile'] = use_profile
    for action in entities:
        if isinstance(action, (SetEnvironmentVariable, UnsetEnvironmentVariable)) and \
                action.condition is not None and action.condition.evaluate(context):
            action.execute(context)
    return {name: context.environment.get(name) for name in FASTDDS_VARIABLES}


def test_fastdds_profile_argument_applies_the_profile_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both profile variables name the installed profile and the built-in transports (which
    would replace the profile's) are unset, as deeplab_ros.ros.dds_profile applies it."""
    module = _real_launch_module()
    applied = _launch_fastdds_environment(module, 'true', monkeypatch)
    profile = applied[PROFILE_VARIABLES[0]]
    assert profile is not None and Path(profile).name == LARGE_IMAGE_PROFILE
    assert Path(profile).is_file()
    assert applied == {**{name: profile for name in PROFILE_VARIABLES},
                       TRANSPORTS_VARIABLE: None}
    assert _launch_fastdds_environment(module, 'false', monkeypatch) == {
        PROFILE_VARIABLES[0]: 'stale.xml', PROFILE_VARIABLES[1]: None,
        TRANSPORTS_VARIABLE: 'UDPv4'}


def _documented_launch_arguments() -> dict[str, str]:
    """Argument -> default column of docs/launch.md's table under "## Arguments"."""
    text = (ROOT / 'docs' / 'launch.md').read_text()
    section = text.split('\n## Arguments\n', 1)[1].split('\n## ', 1)[0]
    rows = re.findall(r'^\|\s*`([a-z_]+)`\s*\|\s*([^|]*?)\s*\|', section, flags=re.MULTILINE)
    return dict(rows)


def test_docs_document_the_launch_arguments_with_their_defaults() -> None:
    """docs/launch.md's argument table lists exactly the launch file's arguments, in order,
    each with its default ('' for an empty one, which may be followed by what decides)."""
    documented = _documented_launch_arguments()
    assert tuple(documented) == DOCUMENTED_ARGUMENTS
    module = _real_launch_module()
    for name, default, _ in module.LAUNCH_ARGUMENTS:
        shown = documented[name]
        assert shown.startswith("''") if default == '' else shown == default, (name, shown)


def test_named_package_executable_and_files_exist_and_are_installed() -> None:
    constants = _launch_module_constants()
    assert constants['PACKAGE'] == 'deeplab_ros'
    assert constants['NODE_NAME'] == 'deeplab_segmentation'
    for name in ('PARAMS_FILE', 'RVIZ_CONFIG'):
        assert (ROOT / 'config' / constants[name]).is_file(), constants[name]
    assert (ROOT / 'config' / LARGE_IMAGE_PROFILE) == PROFILE_FILE and PROFILE_FILE.is_file()

    setup = ast.parse((ROOT / 'setup.py').read_text())
    call = next(node for node in ast.walk(setup) if isinstance(node, ast.Call)
                and getattr(node.func, 'id', '') == 'setup')
    keywords = {k.arg: k.value for k in call.keywords}
    scripts = ast.literal_eval(keywords['entry_points'])['console_scripts']
    assert f'{constants["EXECUTABLE"]} = deeplab_ros.ros.executable:main' in scripts
    assert 'deeplab-ros-bag = deeplab_ros.tools.bag:main' in scripts
    assert 'deeplab-ros-demo = deeplab_ros.tools.demo:main' in scripts

    # Evaluate the data_files globs the way setup.py does, from the repository root.
    import glob as glob_module  # noqa: PLC0415
    import os  # noqa: PLC0415
    previous = os.getcwd()
    os.chdir(ROOT)
    try:
        namespace = {'glob': glob_module.glob, 'PACKAGE': 'deeplab_ros'}
        data_files = eval(compile(ast.Expression(keywords['data_files']), 'setup.py',
                                  'eval'), namespace)  # noqa: S307 (our own setup.py)
    finally:
        os.chdir(previous)
    installed = {f'{folder}/{Path(f).name}' for folder, files in data_files for f in files}
    for expected in ('share/deeplab_ros/launch/segment.launch.py',
                     'share/deeplab_ros/config/segment.yaml',
                     'share/deeplab_ros/config/segment.rviz',
                     'share/deeplab_ros/config/fastdds_large_images.xml',
                     'share/deeplab_ros/package.xml'):
        assert expected in installed, expected


def test_params_file_documents_every_parameter_with_its_default() -> None:
    text = PARAMS_FILE.read_text()
    document = yaml.safe_load(text)
    assert list(document) == ['/**']  # any namespace / node name
    parameters = document['/**']['ros__parameters']
    assert parameters == NODE_PARAMETERS
    for name, value in parameters.items():
        assert type(value) is type(NODE_PARAMETERS[name]), name  # 0 stays int, 0.0 float
        # Every parameter has a comment line right above it.
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f'{name}:'))
        assert lines[index - 1].strip().startswith('#'), name


@pytest.mark.ros
def test_node_declares_exactly_the_params_file_parameters(tmp_path: Path) -> None:
    """Start the node process with the params file (and the Fast DDS profile, as launch with
    use_fastdds_profile:=true does) and compare what it declares with the file."""
    from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: PLC0415
    from rclpy.parameter import parameter_value_to_python  # noqa: PLC0415

    from deeplab_ros.ros.node_process import node_command, NodeProcess  # noqa: PLC0415

    expected = yaml.safe_load(PARAMS_FILE.read_text())['/**']['ros__parameters']
    env = ros_environment()
    large_image_dds_env(env)
    node = NodeProcess(node_command(PARAMS_FILE), env=env, log_path=tmp_path / 'node.log')
    try:
        with SpunNode('parameter_probe') as ros:
            listed = _call_service(ros.node, ListParameters,
                                   '/deeplab_segmentation/list_parameters',
                                   ListParameters.Request(), node)
            names = [n for n in listed.result.names if n not in ROS_OWN_PARAMETERS
                     and not n.startswith('qos_overrides.')]
            values = _call_service(ros.node, GetParameters,
                                   '/deeplab_segmentation/get_parameters',
                                   GetParameters.Request(names=names), node).values
    finally:
        exit_code = node.stop()
    declared = {name: parameter_value_to_python(value) for name, value in zip(names, values)}
    assert set(declared) == set(expected), node.log_text()[-2000:]
    for name, value in expected.items():
        # rcl's YAML parser skips an empty list, so cameras keeps the node's own default.
        assert declared[name] == value or (value == [] and not declared[name]), name
    assert exit_code == 0, node.log_text()[-2000:]


def _call_service(node, service_type: type, name: str, request: object,
                  process: object) -> object:
    client = node.create_client(service_type, name)
    try:
        assert wait_until(lambda: client.service_is_ready() or not process.running(), 90.0)
        assert process.running(), process.log_text()[-2000:]
        time.sleep(0.5)  # "ready" matches the request path; let the reply path match too
        future = client.call_async(request)
        assert wait_until(future.done, 30.0), f'{name} did not answer'
        return future.result()
    finally:
        node.destroy_client(client)


def test_rviz_config_shows_overlay_and_colour_mask() -> None:
    config = yaml.safe_load(RVIZ_FILE.read_text())
    displays = config['Visualization Manager']['Displays']
    images = {d['Topic']['Value']: d for d in displays
              if d['Class'] == 'rviz_default_plugins/Image'}
    # Relative names: RViz runs in the node's namespace (see the launch test below).
    assert images['segmentation/overlay']['Enabled'] is True
    assert images['segmentation/color']['Enabled'] is True
    assert images['image']['Enabled'] is False


def test_rviz_config_shows_the_labelled_cloud_and_the_3d_detections() -> None:
    displays = yaml.safe_load(RVIZ_FILE.read_text())['Visualization Manager']['Displays']
    by_topic = {d['Topic']['Value']: d for d in displays}
    cloud = by_topic['segmentation/points']
    assert (cloud['Class'], cloud['Color Transformer'], cloud['Enabled']) == (
        'rviz_default_plugins/PointCloud2', 'RGB8', True)
    boxes = by_topic['segmentation/detections_3d']
    assert (boxes['Class'], boxes['Enabled']) == (
        'vision_msgs_rviz_plugins/Detection3DArray', True)


def test_fastdds_profile_is_well_formed_and_configures_shm_and_localhost_udp() -> None:
    namespace = '{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}'
    root = ElementTree.parse(PROFILE_FILE).getroot()
    transports = {d.findtext(f'{namespace}transport_id'): d
                  for d in root.iter(f'{namespace}transport_descriptor')}
    shm = next(d for d in transports.values() if d.findtext(f'{namespace}type') == 'SHM')
    assert int(shm.findtext(f'{namespace}segment_size')) == 32 * 1024 * 1024
    udp = next(d for d in transports.values() if d.findtext(f'{namespace}type') == 'UDPv4')
    assert [a.text for a in udp.iter(f'{namespace}address')] == ['127.0.0.1']
    participant = root.find(f'{namespace}participant')
    assert participant.get('is_default_profile') == 'true'
    rtps = participant.find(f'{namespace}rtps')
    assert rtps.findtext(f'{namespace}useBuiltinTransports') == 'false'
    used = [t.text for t in rtps.find(f'{namespace}userTransports')]
    assert sorted(used) == sorted(transports)


@pytest.mark.ros
def test_fastdds_profile_carries_large_best_effort_images_across_processes() -> None:
    """640x480 rgb8 best effort between two processes with the profile: every image arrives.

    Each image is sent once the previous one was acknowledged, so a slow (loaded) reader cannot
    lose any to its history depth; what the profile fixes is the transport (Fast DDS's default
    512 KiB shared-memory segment cannot hold one such image).
    """
    count = 20
    with_profile = best_effort_image_transfer(count, 5.0, large_image_profile=True)
    print(f'640x480 rgb8 best effort: {with_profile}/{count} with the profile')
    assert with_profile == count
