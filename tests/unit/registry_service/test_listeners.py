"""The listener inventory: every port of a frontend, its setting, whether workers share it, its
TLS, its URLs, how it is refused (one line naming the setting), and the ready line (D62)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from registry_service.listeners import (
    PRIVATE_ADMIN_LISTEN,
    Listener,
    Listeners,
    admin_url_of,
    split_address,
)
from registry_service.settings import Settings
from registry_service.startup import ServeError


@pytest.fixture
def served_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def every_port(**overrides: str) -> Settings:
    ports = {
        "listen": "10.0.0.5:50051",
        "admin_listen": "10.0.0.5:9090",
        "http_listen": "10.0.0.5:8080",
        "health_listen": "10.0.0.5:50052",
    }
    return Settings(**{**ports, **overrides})


def test_each_listen_setting_is_one_listener_in_the_order_they_bind():
    listeners = Listeners.of(every_port())
    assert [(lis.setting, lis.address) for lis in listeners] == [
        ("listen", "10.0.0.5:50051"),
        ("health_listen", "10.0.0.5:50052"),
        ("http_listen", "10.0.0.5:8080"),
        ("admin_listen", "10.0.0.5:9090"),
    ]
    assert (listeners.grpc.host, listeners.grpc.port) == ("10.0.0.5", 50051)


def test_workers_share_grpc_health_and_the_http_api_but_not_admin():
    listeners = Listeners.of(every_port())
    assert [lis.setting for lis in listeners.shared] == ["listen", "health_listen", "http_listen"]
    assert not listeners.admin.shared


def test_optional_listeners_are_absent_when_their_setting_is_empty():
    listeners = Listeners.of(every_port(http_listen="", health_listen=""))
    assert listeners.api is None and listeners.health is None
    assert [lis.setting for lis in listeners] == ["listen", "admin_listen"]
    assert [lis.setting for lis in listeners.shared] == ["listen"]


def test_tls_is_on_every_port_but_health_and_a_workers_private_admin_port():
    settings = every_port(tls_cert_file="cert.pem", tls_key_file="key.pem")
    alone = Listeners.of(settings)
    assert {lis.setting: lis.tls for lis in alone} == {
        "listen": True,
        "health_listen": False,
        "http_listen": True,
        "admin_listen": True,
    }
    worker = Listeners.of(settings, private_admin=True)
    assert not worker.admin.tls and worker.api is not None and worker.api.tls
    assert not any(lis.tls for lis in Listeners.of(every_port()))  # no certificate: plaintext


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("[::1]:50051", ("::1", 50051)),
        (":9090", ("", 9090)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_an_address_is_parsed_once_here(address, parsed):
    assert split_address(address) == parsed


@pytest.mark.parametrize("malformed", ["localhost", "127.0.0.1:x", "127.0.0.1:70000", "[::1]"])
def test_a_malformed_address_is_refused_naming_its_setting(malformed):
    with pytest.raises(ValueError):
        split_address(malformed)
    loopback = "127.0.0.1:0"
    listeners = Listeners.of(
        Settings(listen=loopback, admin_listen=loopback, http_listen=malformed)
    )
    with pytest.raises(ServeError) as refused:
        listeners.check()
    assert str(refused.value) == (
        f"cannot listen on {malformed} (not host:port): set REGISTRY_HTTP_LISTEN"
    )


def test_a_port_another_process_listens_on_is_refused_naming_its_setting(served_port):
    address = f"127.0.0.1:{served_port}"
    listeners = Listeners.of(
        Settings(listen="127.0.0.1:0", admin_listen=address, http_listen="127.0.0.1:0")
    )
    with pytest.raises(ServeError) as refused:
        listeners.check()
    assert str(refused.value) == (
        f"cannot listen on {address} (address in use): set REGISTRY_ADMIN_LISTEN"
    )


def test_a_worker_checks_only_its_own_ports_not_the_ones_its_supervisor_shares(served_port):
    address = f"127.0.0.1:{served_port}"
    settings = Settings(listen=address, http_listen=address, admin_listen=PRIVATE_ADMIN_LISTEN)
    Listeners.of(settings).check(worker=True)  # the supervisor's ports: claimed, not checked
    with pytest.raises(ServeError, match=r"set REGISTRY_LISTEN$"):
        Listeners.of(settings).check()


def test_a_refusal_is_one_line_with_the_reason_in_words():
    listener = Listener("admin_listen", "127.0.0.1:9090")
    assert str(listener.refusal(OSError(errno.EADDRINUSE, "Address already in use"))) == (
        "cannot listen on 127.0.0.1:9090 (address in use): set REGISTRY_ADMIN_LISTEN"
    )
    assert str(listener.refusal(OSError(errno.EACCES, "Permission denied"))) == (
        "cannot listen on 127.0.0.1:9090 (permission denied): set REGISTRY_ADMIN_LISTEN"
    )
    assert str(listener.refusal("address in use by\n node-registry pid 7")) == (
        "cannot listen on 127.0.0.1:9090 (address in use by node-registry pid 7): set "
        "REGISTRY_ADMIN_LISTEN"
    )


def test_urls_bracket_an_ipv6_host_and_name_the_bound_port():
    listener = Listener("http_listen", "[::1]:0", tls=True)
    assert listener.url(8443) == "https://[::1]:8443"
    assert listener.host_port(8443) == "[::1]:8443"
    assert listener.url(8443, host="node-7.example") == "https://node-7.example:8443"
    assert listener.at(8443) == Listener("http_listen", "[::1]:8443", tls=True)
    assert Listener("admin_listen", "0.0.0.0:0").url(9090) == "http://0.0.0.0:9090"


def test_others_reach_the_advertised_address_else_the_grpc_host_else_this_machine():
    assert Listeners.of(every_port(advertise_address="reg.example")).advertised_host == (
        "reg.example"
    )
    assert Listeners.of(every_port()).advertised_host == "10.0.0.5"
    for wildcard in ("0.0.0.0:50051", "[::]:50051", ":50051"):
        listeners = Listeners.of(every_port(listen=wildcard))
        assert listeners.advertised_host == socket.gethostname()


def test_the_ready_line_names_every_url_and_ends_with_the_admin_url():
    listeners = Listeners.of(
        every_port(listen="127.0.0.1:0", tls_cert_file="c.pem", tls_key_file="k.pem")
    )
    line = listeners.ready_line(50051, 9090, 8443)
    assert line == (
        "node-registry serving on 127.0.0.1:50051 (api https://10.0.0.5:8443/v1/, console "
        "https://10.0.0.5:8443/ui/, admin https://10.0.0.5:9090)"
    )
    assert admin_url_of(line) == "https://10.0.0.5:9090"


def test_a_supervisors_ready_line_names_its_workers_and_a_plain_one_has_no_api():
    listeners = Listeners.of(every_port(http_listen="", admin_listen="[::1]:0"))
    line = listeners.ready_line(50051, 9191, workers="2 workers, pids 7, 8; ")
    assert line == (
        "node-registry serving on 10.0.0.5:50051 (2 workers, pids 7, 8; admin http://[::1]:9191)"
    )
    assert admin_url_of(line) == "http://[::1]:9191"
    assert admin_url_of("error: cannot listen") == ""
