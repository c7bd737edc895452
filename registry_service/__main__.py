"""`python -m registry_service serve ...`: the frontend alone (what the CLI's `serve` runs)."""

import os
import signal

# A worker (started by a supervisor) ignores Ctrl-C from its first instruction: the terminal
# sends SIGINT to every process of its group, and the supervisor stops its workers with SIGTERM.
# Caught in the middle of an import, SIGINT would print a traceback instead.
if os.environ.get("NODEREGISTRY_SUPERVISOR_PID"):
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import argparse
import logging
import sys
from typing import NoReturn

from registry_service.process.cli import add_serve_arguments, run_serve
from registry_service.process.supervisor import die_with_supervisor


class _Parser(argparse.ArgumentParser):
    """A usage error is one `error:` line, as `noderegistry`'s (D42), not usage + message."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


die_with_supervisor()

parser = _Parser(prog="python -m registry_service")
parser.add_argument("command", choices=["serve"])
# A supervisor passes its own level on to its workers (tracebacks only at DEBUG).
parser.add_argument("--log-level", type=str.upper, default="INFO")
add_serve_arguments(parser)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sys.exit(run_serve(parser.parse_args()))
