"""The options every client verb shares: where the frontends are, how to reach them, what to print.

Each option is a flag and a `NODEREGISTRY_*` environment variable, as etcdctl's `ETCDCTL_*`: a
flag wins over its variable, which wins over the default. The table `OPTIONS` is the one source
for the parser, the resolution and the README (a test keeps the README in step).

Resolution is pure (`resolve(args, environ)`): it reads the files it is given (the token file,
and the TLS files to check that they can be read) and nothing else, and raises `UsageError`
naming the flag or variable a bad value came from.
"""

from __future__ import annotations

import argparse
import difflib
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from client_sdk import ClientConfig, RegistryClient
from registry_cli.errors import UsageError

DEFAULT_ENDPOINTS = "127.0.0.1:50051"
DEFAULT_ADMIN_ENDPOINTS = "127.0.0.1:9090"
DEFAULT_TIMEOUT_SECONDS = 5.0
OUTPUT_FORMATS = ("table", "json")
FILE_METAVAR = "FILE"  # shell completion completes file names for options with this metavar


@dataclass(frozen=True)
class Option:
    """One shared option: its flags, its variable, and what it means."""

    flags: tuple[str, ...]
    variable: str
    dest: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None


OPTIONS = (
    Option(
        ("--endpoints", "--target"),
        "NODEREGISTRY_ENDPOINTS",
        "endpoints",
        f"frontend address(es), comma-separated, tried in order (default {DEFAULT_ENDPOINTS})",
        metavar="HOST:PORT,...",
    ),
    Option(
        ("--cacert",),
        "NODEREGISTRY_CACERT",
        "cacert",
        "CA bundle (PEM) that signed the frontends' certificates; TLS is on when it is set",
        metavar=FILE_METAVAR,
    ),
    Option(
        ("--cert",),
        "NODEREGISTRY_CERT",
        "cert",
        "client certificate (PEM), for frontends that require mTLS; with --key",
        metavar=FILE_METAVAR,
    ),
    Option(
        ("--key",),
        "NODEREGISTRY_KEY",
        "key",
        "private key (PEM) of --cert",
        metavar=FILE_METAVAR,
    ),
    Option(
        ("--token",),
        "NODEREGISTRY_TOKEN",
        "token",
        "bearer token (visible to `ps`: prefer --token-file or the variable)",
        metavar="TOKEN",
    ),
    Option(
        ("--token-file",),
        "NODEREGISTRY_TOKEN_FILE",
        "token_file",
        "file holding the bearer token (a final newline is dropped)",
        metavar=FILE_METAVAR,
    ),
    Option(
        ("--timeout",),
        "NODEREGISTRY_TIMEOUT",
        "timeout",
        f"seconds one call may take (default {DEFAULT_TIMEOUT_SECONDS:g}); `watch`: until the "
        "first list",
        metavar="SECONDS",
    ),
    Option(
        ("-o", "--output"),
        "NODEREGISTRY_OUTPUT",
        "output",
        "table (for people, the default) or json (for scripts; see the README for its shape)",
        choices=OUTPUT_FORMATS,
    ),
)
# The `admin` verbs talk to the frontends' admin ports (HTTP), not to their gRPC port.
ADMIN_OPTIONS = (
    Option(
        ("--admin-endpoints",),
        "NODEREGISTRY_ADMIN_ENDPOINTS",
        "admin_endpoints",
        "admin port(s) of any frontend(s), comma-separated, tried in order: host:port (https "
        f"when --cacert is set) or a URL (default {DEFAULT_ADMIN_ENDPOINTS}); one answers for "
        "the whole cluster",
        metavar="HOST:PORT,...",
    ),
)
VARIABLES = frozenset(option.variable for option in OPTIONS + ADMIN_OPTIONS)
# Read by the server or its container, not by the client verbs: never "unknown".
_NOT_CLIENT_VARIABLES = frozenset(
    {
        "NODEREGISTRY_CONTAINER",
        "NODEREGISTRY_SUPERVISOR_PID",
        "NODEREGISTRY_TOOLS_BIN",
        "NODEREGISTRY_WORKER_INDEX",
        "NODEREGISTRY_WORKER_COUNT",
        "NODEREGISTRY_HOST_ADMIN_URL",
    }
)
_RENAMED = {"NODEREGISTRY_TARGET": "NODEREGISTRY_ENDPOINTS"}


PLAINTEXT_FLAG = "--plaintext"


def add_client_options(
    parser: argparse.ArgumentParser, *, admin: bool = False, root: bool = False
) -> None:
    """Adds the shared options to a verb's parser, or (`root`) to the command's own, so that
    they may come before the verb or after it. None has a default here (`resolve` applies
    them): an option absent from a verb's line leaves the one given before the verb alone. An
    admin verb gets `--admin-endpoints` in place of `--endpoints`; the root takes both."""
    title = "connection and output (flag, else variable, else default)"
    if root:
        title = "connection and output of the client commands, before or after the command"
    group = parser.add_argument_group(title)
    chosen = OPTIONS + ADMIN_OPTIONS if root else ADMIN_OPTIONS + OPTIONS[1:] if admin else OPTIONS
    for option in chosen:
        group.add_argument(
            *option.flags,
            dest=option.dest,
            metavar=option.metavar,
            choices=option.choices,
            default=argparse.SUPPRESS,
            help=f"{option.help} [{option.variable}]",
        )
    group.add_argument(
        PLAINTEXT_FLAG,
        action="store_true",
        default=argparse.SUPPRESS,
        help="this call without TLS, whatever --cacert, --cert, --key or their variables say "
        "(a plaintext frontend while NODEREGISTRY_CACERT is set)",
    )


def given_client_options(args: argparse.Namespace) -> list[str]:
    """The shared options present in `args` (by their first flag): the ones given on the
    command line, before or after the verb."""
    flags = [o.flags[0] for o in OPTIONS + ADMIN_OPTIONS if hasattr(args, o.dest)]
    return flags + ([PLAINTEXT_FLAG] if hasattr(args, "plaintext") else [])


@dataclass(frozen=True)
class ClientOptions:
    """The shared options, resolved.

    Attributes:
        endpoints: the frontends, in the order to try them.
        admin_endpoints: the frontends' admin ports (`admin` verbs), in the order to try them.
        cacert: CA bundle file; empty means plaintext.
        cert: client certificate file (mTLS); empty means none.
        key: the client certificate's key file.
        token: the bearer token itself (read from its file when given that way); empty: none.
        timeout_seconds: the deadline of each call.
        output: "table" or "json".
    """

    endpoints: tuple[str, ...] = (DEFAULT_ENDPOINTS,)
    admin_endpoints: tuple[str, ...] = (DEFAULT_ADMIN_ENDPOINTS,)
    cacert: str = ""
    cert: str = ""
    key: str = ""
    token: str = ""
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    output: str = "table"

    @property
    def json(self) -> bool:
        """Whether the output is JSON (`-o json`) rather than tables for people."""
        return self.output == "json"

    def client_config(self) -> ClientConfig:
        """The SDK's configuration: the call timeout, TLS files and token."""
        return ClientConfig(
            call_timeout_seconds=self.timeout_seconds,
            tls_ca_file=self.cacert,
            tls_cert_file=self.cert,
            tls_key_file=self.key,
            bearer_token=self.token,
        )

    def client(self) -> RegistryClient:
        """An SDK client with these options; use it as `async with options.client() as c:`."""
        return RegistryClient(self.endpoints, config=self.client_config())


@dataclass(frozen=True)
class _Value:
    text: str
    source: str  # the flag or the variable it came from, for messages


def _pick(args: argparse.Namespace, environ: Mapping[str, str], option: Option) -> _Value | None:
    """The flag's value, else the variable's (an empty variable counts as unset), else None."""
    given = getattr(args, option.dest, None)
    if given is not None:
        return _Value(given, option.flags[0])
    if environ.get(option.variable):
        return _Value(environ[option.variable], option.variable)
    return None


def _readable(value: _Value | None) -> str:
    if value is None:
        return ""
    try:
        Path(value.text).read_bytes()
    except OSError as err:
        raise UsageError(f"{value.source}: cannot read {value.text!r} ({err.strerror})") from err
    return value.text


def _check_pair(cert: _Value | None, key: _Value | None) -> None:
    """A certificate and a key that do not belong together fail every handshake, and grpc says
    so in lines of its own: say it here, naming where each came from."""
    assert cert is not None and key is not None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            cert.text, key.text, password=lambda: ""
        )
    except ssl.SSLError as err:
        reason = (err.reason or "unreadable").replace("_", " ").lower()
        raise UsageError(
            f"{cert.source} {cert.text!r} and {key.source} {key.text!r} are not a PEM "
            f"certificate and its unencrypted key ({reason})"
        ) from None


def _endpoints(value: _Value | None, default: str = DEFAULT_ENDPOINTS) -> tuple[str, ...]:
    if value is None:
        return (default,)
    endpoints = tuple(name.strip() for name in value.text.split(",") if name.strip())
    if not endpoints:
        raise UsageError(f"{value.source}: give at least one frontend as host:port, not ''")
    return endpoints


def _timeout(value: _Value | None) -> float:
    if value is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(value.text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{value.source}: {value.text!r} is not a number of seconds > 0")
    return seconds


def _output(value: _Value | None) -> str:
    if value is None:
        return "table"
    if value.text not in OUTPUT_FORMATS:
        raise UsageError(
            f"{value.source}: {value.text!r} is not one of {', '.join(OUTPUT_FORMATS)}"
        )
    return value.text


def _token(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The bearer token: --token or --token-file, else NODEREGISTRY_TOKEN or _TOKEN_FILE.

    Both forms at one level (two flags, or two variables) is an error: which one was meant?
    """
    by_dest = {option.dest: option for option in OPTIONS}
    flag_level = [
        _Value(getattr(args, dest), by_dest[dest].flags[0])
        for dest in ("token", "token_file")
        if getattr(args, dest, None) is not None
    ]
    variable_level = [
        _Value(environ[by_dest[dest].variable], by_dest[dest].variable)
        for dest in ("token", "token_file")
        if environ.get(by_dest[dest].variable)
    ]
    for level in (flag_level, variable_level):
        if len(level) == 2:
            raise UsageError(f"{level[0].source} and {level[1].source}: give one, not both")
        if level:
            (value,) = level
            if value.source in ("--token", "NODEREGISTRY_TOKEN"):
                return _nonempty_token(value.text, value.source)
            return _token_from_file(value)
    return ""


def _token_from_file(value: _Value) -> str:
    try:
        text = Path(value.text).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not text"
        raise UsageError(f"{value.source}: cannot read {value.text!r} ({reason})") from err
    return _nonempty_token(text.removesuffix("\n").removesuffix("\r"), value.source)


def _nonempty_token(token: str, source: str) -> str:
    if not token.strip() or any(c in token for c in "\r\n"):
        raise UsageError(f"{source}: a token is one non-empty line")
    return token


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> ClientOptions:
    """The shared options from the parsed flags and the environment (flag > variable > default).

    Raises:
        UsageError: a value is malformed, a file cannot be read, or options that go together
            are not given together; the message names the flag or variable.
    """
    by_dest = {option.dest: _pick(args, environ, option) for option in OPTIONS + ADMIN_OPTIONS}
    if getattr(args, "plaintext", False):
        tls_flags = [f for f in ("cacert", "cert", "key") if getattr(args, f, None) is not None]
        if tls_flags:
            raise UsageError(f"{PLAINTEXT_FLAG} and --{tls_flags[0]}: give one, not both")
        by_dest.update(cacert=None, cert=None, key=None)  # their variables do not apply
    cacert = _readable(by_dest["cacert"])
    cert = _readable(by_dest["cert"])
    key = _readable(by_dest["key"])
    if bool(cert) != bool(key):
        raise UsageError("--cert and --key go together (the client certificate and its key)")
    if cert and not cacert:
        raise UsageError("--cert needs --cacert (TLS is on only when --cacert is given)")
    if cert:
        _check_pair(by_dest["cert"], by_dest["key"])
    return ClientOptions(
        endpoints=_endpoints(by_dest["endpoints"]),
        admin_endpoints=_endpoints(by_dest["admin_endpoints"], DEFAULT_ADMIN_ENDPOINTS),
        cacert=cacert,
        cert=cert,
        key=key,
        token=_token(args, environ),
        timeout_seconds=_timeout(by_dest["timeout"]),
        output=_output(by_dest["output"]),
    )


def environment_warnings(environ: Mapping[str, str]) -> list[str]:
    """A line for each NODEREGISTRY_* variable that no verb reads but one was likely meant (a
    misspelling, or the old NODEREGISTRY_TARGET): a silently ignored variable would send the
    command to the default frontend."""
    warnings = []
    for name in sorted(environ):
        if not name.startswith("NODEREGISTRY_") or name in VARIABLES | _NOT_CLIENT_VARIABLES:
            continue
        meant = _RENAMED.get(name) or next(
            iter(difflib.get_close_matches(name, sorted(VARIABLES), n=1, cutoff=0.85)), None
        )
        if meant:
            warnings.append(f"warning: {name} is not read; did you mean {meant}?")
    return warnings
