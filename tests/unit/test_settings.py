from __future__ import annotations

from pathlib import Path

import pytest

from registry_service.settings import Settings, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_flags_beat_environment_beats_defaults():
    settings = Settings.load(
        ["--ttl-min-seconds", "4", "--etcd-endpoints", "a:1, b:2"],
        {"REGISTRY_TTL_MIN_SECONDS": "5", "REGISTRY_CLUSTER": "blue"},
    )
    assert settings.ttl_min_seconds == 4
    assert settings.etcd_endpoints == ("a:1", "b:2")
    assert settings.cluster == "blue"
    assert settings.prefix == "/noderegistry/blue/"
    assert settings.limits.ttl_min_seconds == 4


def test_a_malformed_value_names_the_setting():
    with pytest.raises(SystemExit, match="ttl_max_seconds"):
        Settings.load([], {"REGISTRY_TTL_MAX_SECONDS": "ten"})


def test_readme_lists_every_setting_as_the_code_defines_it():
    assert markdown_table() in README.read_text(), "run `python tools/settings_table.py`"
