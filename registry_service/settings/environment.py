"""How a settings dataclass is read from the environment, the command line and secret files.

Strict, because a setting that is silently ignored is worse than one refused (decision D32): a
`REGISTRY_*` variable that names no setting is an error naming the closest one, a boolean is one of
true/false/1/0/yes/no, and a malformed value names its variable. Secrets (`secret=True`) also
load from a file named by `REGISTRY_<NAME>_FILE` (Kubernetes and Docker secrets are files).
Every refusal is a `SettingsError` whose message is one line; the CLI prints it and exits 1.

The functions take the dataclass (settings/fields.py's `Settings`) as an argument, so that this
module knows how settings are read and nothing of which settings there are.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import re
import types
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

ENV_PREFIX = "REGISTRY_"
# REGISTRY_* variables that are not settings: failpoints.py's test instrument (D24).
NOT_SETTINGS = frozenset({"REGISTRY_FAILPOINTS"})
# What Kubernetes puts in every pod of a namespace with a Service named `registry` (or
# `registry-...`): REGISTRY_SERVICE_HOST, REGISTRY_SERVICE_PORT[_<NAME>], REGISTRY_PORT_50051_TCP...
# and REGISTRY_PORT=tcp://... (our Deployment turns them off with enableServiceLinks: false).
_KUBERNETES_SERVICE_LINK = re.compile(
    r"REGISTRY(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?"
    r"|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)"
)
_KUBERNETES_PORT_URL = re.compile(r"(tcp|udp|sctp)://")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

SettingsT = TypeVar("SettingsT")
_type_hints = functools.cache(get_type_hints)  # of a settings dataclass, read once


class SettingsError(ValueError):
    """A setting is unknown, malformed or unreadable; the message names it, on one line."""


def setting(default: Any, help: str, *, secret: bool = False) -> Any:
    """A field of a settings dataclass: its default, its help (the README's meaning column), and
    whether it is a secret (readable from a file too)."""
    return field(default=default, metadata={"help": help, "secret": secret})


def env_name(name: str) -> str:
    """The environment variable of a setting: `etcd_endpoints` -> `REGISTRY_ETCD_ENDPOINTS`."""
    return f"{ENV_PREFIX}{name.upper()}"


def file_env_name(name: str) -> str:
    """The variable naming a file that holds a secret setting."""
    return f"{env_name(name)}_FILE"


def flag_name(name: str) -> str:
    """The command-line flag of a setting: `etcd_endpoints` -> `--etcd-endpoints`."""
    return f"--{name.replace('_', '-')}"


def secret_variables(kind: type) -> frozenset[str]:
    """The `REGISTRY_<NAME>_FILE` variables of the secret settings of `kind`."""
    return frozenset(
        file_env_name(f.name) for f in dataclasses.fields(kind) if f.metadata["secret"]
    )


def read_environ(
    kind: type[SettingsT], environ: Mapping[str, str], defaults: SettingsT
) -> SettingsT:
    """`defaults` overridden by the REGISTRY_* variables of `environ` (all must be known)."""
    _reject_unknown(kind, environ)
    overrides = {}
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        raw = _environ_value(f, environ)
        if raw is not None:
            overrides[f.name] = _parse(kind, f.name, raw, env_name(f.name))
    return dataclasses.replace(defaults, **overrides)  # type: ignore[type-var]


def with_arguments(kind: type, parser: argparse.ArgumentParser) -> None:
    """Adds one --flag per setting of `kind`; unset flags leave the value from the environment."""
    for f in dataclasses.fields(kind):
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (env {env_name(f.name)}, default {f.default!r})",
        )


def read_arguments(kind: type, namespace: argparse.Namespace) -> dict[str, Any]:
    """The settings of `kind` that flags in `namespace` give, parsed (see with_arguments)."""
    return {
        f.name: _parse(kind, f.name, getattr(namespace, f.name), flag_name(f.name))
        for f in dataclasses.fields(kind)
        if getattr(namespace, f.name, None) is not None
    }


def table_rows(kind: type) -> list[str]:
    """The README's configuration table of `kind`, a Markdown line per row."""
    rows = ["| setting | flag | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(kind):
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        meaning = f.metadata["help"]
        if f.metadata["secret"]:
            meaning += f"; or `{file_env_name(f.name)}`: a file holding it"
        rows.append(f"| `{env_name(f.name)}` | `{flag_name(f.name)}` | `{default}` | {meaning} |")
    return rows


def _reject_unknown(kind: type, environ: Mapping[str, str]) -> None:
    names = [env_name(f.name) for f in dataclasses.fields(kind)] + sorted(secret_variables(kind))
    known = {name.removeprefix(ENV_PREFIX): name for name in names}
    unknown = sorted(
        name
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX)
        and name.removeprefix(ENV_PREFIX) not in known
        and name not in NOT_SETTINGS
        and not _KUBERNETES_SERVICE_LINK.fullmatch(name)
        and not (name.endswith("_PORT") and _KUBERNETES_PORT_URL.match(value))
    )
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.6)
        hint = f" (did you mean {known[close[0]]}?)" if close else ""
        described.append(f"{name}{hint}")
    raise SettingsError(
        f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(described)}: "
        "the README's configuration table lists every REGISTRY_* variable"
    )


def _environ_value(setting: dataclasses.Field[Any], environ: Mapping[str, str]) -> str | None:
    """The raw value of a setting: its variable, or for a secret, the file its _FILE names."""
    variable = env_name(setting.name)
    file_variable = file_env_name(setting.name)
    if not setting.metadata["secret"] or file_variable not in environ:
        return environ.get(variable)
    if variable in environ:
        raise SettingsError(f"{variable} and {file_variable} are both set: keep one")
    path = environ[file_variable]
    try:
        # A secret file usually ends with a newline that is not part of the secret.
        return Path(path).read_text().rstrip("\r\n")
    except OSError as err:
        raise SettingsError(f"{file_variable}: cannot read {path} ({err.strerror})") from None


def _parse(kind: type, name: str, raw: str, source: str) -> Any:
    """`raw` as the type of setting `name`; `source` (its variable or flag) names it in errors."""
    value_type = _type_hints(kind)[name]
    if value_type is bool:
        value = _BOOLEANS.get(raw.strip().lower())
        if value is None:
            raise SettingsError(f"{source}: {raw!r} is not a boolean: use true/false/1/0/yes/no")
        return value
    try:
        if value_type is int:
            return int(raw)
        if value_type is float:
            return float(raw)
    except ValueError:
        raise SettingsError(f"{source}: {raw!r} is not a valid {value_type.__name__}") from None
    if isinstance(value_type, types.GenericAlias):  # tuple[str, ...]
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
