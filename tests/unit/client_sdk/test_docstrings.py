"""Every public name of the SDK, and every public method and property of its classes, has a
docstring: they are the users' reference. Their form (Google style) is ruff's `D` rules in
`make lint`; ruff counts what lives in the SDK's `_modules` as private and would not ask for
them, hence this test (docs/decisions.md D57)."""

from __future__ import annotations

import ast
import inspect
import textwrap

import client_sdk


def _own_docstring(cls: type) -> str | None:
    """The docstring written in the class body (a dataclass without one gets its signature)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    definition = tree.body[0]
    assert isinstance(definition, ast.ClassDef)
    return ast.get_docstring(definition)


def _public_callables(cls: type) -> dict[str, object]:
    """Public methods and properties, the SDK's own (inherited ones included), by name."""
    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("client_sdk"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, property):
                found[name] = value.fget
            elif isinstance(value, staticmethod | classmethod):
                found[name] = value.__func__
            elif inspect.isfunction(value):
                found[name] = value
    return found


def _undocumented() -> list[str]:
    missing = []
    for name in client_sdk.__all__:
        exported = getattr(client_sdk, name)
        if inspect.isclass(exported):
            if not _own_docstring(exported):
                missing.append(name)
            for member_name, member in _public_callables(exported).items():
                if not inspect.getdoc(member):
                    missing.append(f"{name}.{member_name}")
        elif callable(exported) and not inspect.getdoc(exported):
            missing.append(name)
    return missing


def test_every_exported_name_and_public_member_has_a_docstring():
    assert _undocumented() == []


def test_the_check_sees_members_inherited_from_the_sdk_s_own_bases():
    # EventStream's close() and iteration come from the private Subscription base.
    assert "close" in _public_callables(client_sdk.EventStream)
    assert "close" in _public_callables(client_sdk.RegistryClient)
