"""ament_python package definition for deeplab_ros."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'deeplab_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.rviz')
         + glob('config/*.xml')),
    ],
    install_requires=['setuptools', 'numpy', 'opencv-python-headless', 'pyyaml'],
    extras_require={'test': ['pytest', 'pytest-timeout'], 'onnx': ['onnx', 'onnxruntime']},
    zip_safe=True,
    maintainer='deeplab_ros maintainers',
    maintainer_email='maintainers@deeplab-ros.dev',
    description='MobileNetV2 DeepLab semantic segmentation lifecycle node for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'segmentation_node = deeplab_ros.ros.executable:main',
            'deeplab-ros-convert = deeplab_ros.tools.convert:main',
            'deeplab-ros-models = deeplab_ros.tools.models:main',
            'deeplab-ros-eval = deeplab_ros.tools.evaluate:main',
            'deeplab-ros-bench = deeplab_ros.tools.bench:main',
            'deeplab-ros-bag = deeplab_ros.tools.bag:main',
            'deeplab-ros-demo = deeplab_ros.tools.demo:main',
            'deeplab-ros-train = deeplab_ros.tools.train:main',
            'deeplab-ros-export = deeplab_ros.tools.export:main',
        ],
    },
)
