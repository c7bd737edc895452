"""How the CLI fails: one `error: ...` line on stderr and an exit status, never a traceback.

Exit statuses (README "CLI"):
    0   success.
    1   the registry refused or failed the request, or could not be reached (the SDK's message
        says which frontend and why), or `health` found a frontend that is not SERVING.
    2   a usage error, found before anything is sent: a malformed command line, a malformed
        NODEREGISTRY_* variable, a file named by either that cannot be read.
    130 interrupted (Ctrl-C) before the command finished.
"""

from __future__ import annotations

from client_sdk import RegistryError, RegistryRPCError, StatusCode, TlsError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line or the environment is wrong; the message names the flag or variable."""


# What a person can do about a refusal, in the CLI's own terms (the SDK's message names the
# SDK's settings, the frontend's names the frontend's).
_HINTS = {
    StatusCode.UNAUTHENTICATED: "give a token with --token-file, --token or NODEREGISTRY_TOKEN",
    StatusCode.PERMISSION_DENIED: "use a token with that scope",
    StatusCode.DEADLINE_EXCEEDED: "--timeout or NODEREGISTRY_TIMEOUT waits longer",
    StatusCode.UNAVAILABLE: "check --endpoints or NODEREGISTRY_ENDPOINTS, or retry",
}

# A TLS failure names the ClientConfig field to change (TlsError.setting): here, the options.
_TLS_HINTS = {
    "tls_ca_file": "--cacert or NODEREGISTRY_CACERT; --plaintext for a frontend without TLS",
    "tls_cert_file": "--cert and --key, or NODEREGISTRY_CERT and NODEREGISTRY_KEY",
    "": "the frontend's own certificate is at fault: REGISTRY_TLS_CERT_FILE on the frontend",
}

_UNKNOWN_TOKEN_HINT = (
    "check the token given with --token-file, --token or NODEREGISTRY_TOKEN: this registry's "
    "tokens file does not hold it"
)


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def error_line(err: RegistryError) -> str:
    """The line printed for an error the SDK raised: its message on one line, and a hint."""
    line = f"error: {one_line(str(err))}"
    hint: str | None = None
    if isinstance(err, TlsError):
        hint = _TLS_HINTS.get(err.setting, _TLS_HINTS[""])
    elif isinstance(err, RegistryRPCError):
        hint = _HINTS.get(err.code)
        if err.code is StatusCode.UNAUTHENTICATED and "unknown token" in str(err):
            hint = _UNKNOWN_TOKEN_HINT  # a token was given: the registry does not know it
    return f"{line} ({hint})" if hint else line
