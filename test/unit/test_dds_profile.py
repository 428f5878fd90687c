"""The large-image Fast DDS profile: applied by one policy wherever a tool applies it."""

from deeplab_ros.ros.dds_profile import (
    describe_dds_env, large_image_dds_env, large_image_profile, PROFILE_VARIABLES)


def test_profile_is_applied_whole_over_other_fast_dds_settings() -> None:
    env = {'PATH': '/usr/bin', 'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4',
           'FASTDDS_DEFAULT_PROFILES_FILE': 'stale.xml'}
    assert describe_dds_env(env) == 'Fast DDS profile stale.xml'
    large_image_dds_env(env)
    assert large_image_profile().is_file()
    assert env == {'PATH': '/usr/bin',
                   **{name: str(large_image_profile()) for name in PROFILE_VARIABLES}}
    assert describe_dds_env(env) == 'Fast DDS profile fastdds_large_images.xml'
    assert describe_dds_env({'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4'}) == \
        'Fast DDS transports UDPv4'
