from __future__ import annotations

from pathlib import Path

import pytest

from registry_service.host import Host
from registry_service.process.supervisor import _environment as supervisor_environment
from registry_service.settings import Settings, SettingsError, markdown_table

README = Path(__file__).resolve().parents[3] / "README.md"
LAPTOP = Host(in_container=False, cpus=8)


def load(environ: dict[str, str], argv: list[str] | None = None, host: Host = LAPTOP) -> Settings:
    return Settings.load(argv or [], environ, host=host)


def test_flags_beat_environment_beats_defaults():
    settings = load(
        {"REGISTRY_TTL_MIN_SECONDS": "5", "REGISTRY_CLUSTER": "blue"},
        ["--ttl-min-seconds", "4", "--etcd-endpoints", "a:1, b:2"],
    )
    assert settings.ttl_min_seconds == 4
    assert settings.etcd_endpoints == ("a:1", "b:2")
    assert settings.cluster == "blue"
    assert settings.prefix == "/noderegistry/blue/"
    assert settings.limits.ttl_min_seconds == 4


def test_a_malformed_value_names_its_variable():
    with pytest.raises(SettingsError, match="REGISTRY_TTL_MAX_SECONDS: 'ten' is not a valid int"):
        load({"REGISTRY_TTL_MAX_SECONDS": "ten"})


def test_a_malformed_flag_names_the_flag():
    with pytest.raises(SettingsError, match="--ttl-max-seconds: 'ten'"):
        load({}, ["--ttl-max-seconds", "ten"])


def test_an_unknown_variable_is_refused_naming_the_closest_setting():
    with pytest.raises(SettingsError) as caught:
        load({"REGISTRY_ETCD_ENDPOINT": "10.0.0.1:2379"})
    assert str(caught.value).startswith(
        "unknown setting REGISTRY_ETCD_ENDPOINT (did you mean REGISTRY_ETCD_ENDPOINTS?)"
    )
    assert "\n" not in str(caught.value)


def test_every_unknown_variable_is_named_in_one_line():
    with pytest.raises(SettingsError) as caught:
        load({"REGISTRY_EVICTOR_DRYRUN": "true", "REGISTRY_XYZZY": "1"})
    message = str(caught.value)
    assert "REGISTRY_EVICTOR_DRYRUN (did you mean REGISTRY_EVICTOR_DRY_RUN?)" in message
    assert "REGISTRY_XYZZY:" in message  # nothing close: no guess
    assert "\n" not in message


def test_variables_that_are_not_settings_pass():
    settings = load(
        {
            "REGISTRY_FAILPOINTS": "register.after_commit=exit",  # failpoints.py's
            # What Kubernetes sets for a Service named `registry` in the namespace:
            "REGISTRY_SERVICE_HOST": "10.96.0.7",
            "REGISTRY_SERVICE_PORT": "50051",
            "REGISTRY_SERVICE_PORT_GRPC": "50051",
            "REGISTRY_PORT": "tcp://10.96.0.7:50051",
            "REGISTRY_PORT_50051_TCP": "tcp://10.96.0.7:50051",
            "REGISTRY_PORT_50051_TCP_PROTO": "tcp",
            "REGISTRY_PORT_50051_TCP_PORT": "50051",
            "REGISTRY_PORT_50051_TCP_ADDR": "10.96.0.7",
            "NODEREGISTRY_TARGET": "a:1",  # the CLI's, another prefix
        }
    )
    assert settings == load({})


def test_a_misspelled_port_setting_is_not_mistaken_for_a_kubernetes_variable():
    with pytest.raises(SettingsError, match="did you mean REGISTRY_EMBEDDED_ETCD_PORT"):
        load({"REGISTRY_EMBEDED_ETCD_PORT": "2379"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), ("True", True)],
        *[("false", False), ("0", False), ("no", False), (" No ", False)],
    ],
)
def test_booleans_accept_true_false_1_0_yes_no(raw, expected):
    assert load({"REGISTRY_EVICTOR_DRY_RUN": raw}).evictor_dry_run is expected


@pytest.mark.parametrize("raw", ["ture", "on", "off", "", "2", "y"])
def test_any_other_boolean_is_refused_naming_the_variable(raw):
    with pytest.raises(SettingsError, match=r"REGISTRY_EVICTOR_DRY_RUN: .* is not a boolean"):
        load({"REGISTRY_EVICTOR_DRY_RUN": raw})


def test_secrets_load_from_files_without_their_final_newline(tmp_path):
    (tmp_path / "password").write_text("s3cret pass\n")
    (tmp_path / "token").write_text("admin-token")
    settings = load(
        {
            "REGISTRY_ETCD_PASSWORD_FILE": str(tmp_path / "password"),
            "REGISTRY_ADMIN_TOKEN_FILE": str(tmp_path / "token"),
        }
    )
    assert settings.etcd_password == "s3cret pass"
    assert settings.admin_token == "admin-token"


def test_a_secret_given_twice_is_refused(tmp_path):
    (tmp_path / "password").write_text("a")
    both = "REGISTRY_ETCD_PASSWORD and REGISTRY_ETCD_PASSWORD_FILE are both set"
    with pytest.raises(SettingsError, match=both):
        load(
            {
                "REGISTRY_ETCD_PASSWORD": "b",
                "REGISTRY_ETCD_PASSWORD_FILE": str(tmp_path / "password"),
            }
        )


def test_an_unreadable_secret_file_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError, match=f"REGISTRY_ADMIN_TOKEN_FILE: cannot read {missing}"):
        load({"REGISTRY_ADMIN_TOKEN_FILE": str(missing)})


def test_only_secrets_have_file_variables():
    with pytest.raises(SettingsError, match="unknown setting REGISTRY_CLUSTER_FILE"):
        load({"REGISTRY_CLUSTER_FILE": "/etc/hostname"})


def test_outside_a_container_the_defaults_listen_on_loopback():
    settings = load({})
    assert settings.listen == "127.0.0.1:50051"
    assert settings.admin_listen == "127.0.0.1:9090"
    assert settings.http_listen == "127.0.0.1:8080"


def test_in_a_container_the_defaults_listen_on_every_interface():
    settings = load({}, host=Host(in_container=True, cpus=2))
    assert settings.listen == "0.0.0.0:50051"
    assert settings.admin_listen == "0.0.0.0:9090"
    assert settings.http_listen == "0.0.0.0:8080"
    explicit = load({"REGISTRY_LISTEN": "10.0.0.1:7000"}, host=Host(in_container=True, cpus=2))
    assert explicit.listen == "10.0.0.1:7000"


def test_workers_default_to_the_hosts_usable_cpus():
    assert load({}, host=Host(in_container=True, cpus=3)).workers == 3
    assert load({"REGISTRY_WORKERS": "0"}, host=Host(in_container=False, cpus=5)).workers == 5
    assert load({}, ["--workers", "2"], host=Host(in_container=False, cpus=5)).workers == 2


def test_readme_lists_every_setting_as_the_code_defines_it():
    assert markdown_table() in README.read_text(), "run `python tools/settings_table.py`"


def test_a_workers_environment_loads_back_to_the_supervisors_settings(tmp_path, monkeypatch):
    (tmp_path / "password").write_text("pw\n")
    monkeypatch.setenv("REGISTRY_ETCD_PASSWORD_FILE", str(tmp_path / "password"))
    monkeypatch.setenv("REGISTRY_EVICTOR_DRY_RUN", "yes")
    settings = Settings.load([], host=LAPTOP)
    worker_environ = supervisor_environment(settings)
    assert "REGISTRY_ETCD_PASSWORD_FILE" not in worker_environ
    assert Settings.load([], worker_environ, host=LAPTOP) == settings
