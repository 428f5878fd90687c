"""The shipped Fast DDS profile for large images, applied to an environment by one policy.

Policy: applying the profile applies all of it. Both profile variables (Fast DDS 2.x
``FASTRTPS_...`` and 3.x ``FASTDDS_...``) name the shipped profile, whatever they named
before, and ``FASTDDS_BUILTIN_TRANSPORTS`` is removed (it replaces the profile's transports:
with ``UDPv4``, full-size frames are fragmented and lost). A half-applied profile gives
neither the user's configuration nor the one the tool reports and was measured with. Whether
to apply it is the entry point's choice, each with a way out: ``deeplab-ros-demo
--no-fastdds-profile``, the launch argument ``use_fastdds_profile`` (launch/segment.launch.py
imports the names below: it sets the same two variables and unsets the transports one); the
node benchmark always applies it, since its numbers are stated for it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from deeplab_ros.package_files import config_file

#: The profile's file name under the package's ``config/``.
LARGE_IMAGE_PROFILE = 'fastdds_large_images.xml'
#: The variables that name a Fast DDS profiles file (2.x and 3.x spellings).
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
#: Picks Fast DDS's built-in transports, in place of the profile's.
TRANSPORTS_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'


def large_image_profile() -> Path:
    """The shipped Fast DDS profile for large images."""
    return config_file(LARGE_IMAGE_PROFILE)


def large_image_dds_env(env: MutableMapping[str, str]) -> None:
    """Point ``env`` at the large-image profile: both profile variables, no built-in transports."""
    profile = str(large_image_profile())
    for name in PROFILE_VARIABLES:
        env[name] = profile
    env.pop(TRANSPORTS_VARIABLE, None)


def describe_dds_env(env: MutableMapping[str, str]) -> str:
    """What Fast DDS configuration ``env`` selects, for reports: a profile file or transports."""
    profile = env.get('FASTDDS_DEFAULT_PROFILES_FILE') or env.get(PROFILE_VARIABLES[0])
    if profile:
        return f'Fast DDS profile {Path(profile).name}'
    if env.get(TRANSPORTS_VARIABLE):
        return f'Fast DDS transports {env[TRANSPORTS_VARIABLE]}'
    return 'Fast DDS defaults'
