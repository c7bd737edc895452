"""`python -m registry_service serve ...`: the frontend alone (what the CLI's `serve` runs)."""

import argparse
import logging
import sys

from registry_service.cli import add_serve_arguments, run_serve
from registry_service.supervisor import die_with_supervisor

die_with_supervisor()

parser = argparse.ArgumentParser(prog="python -m registry_service")
parser.add_argument("command", choices=["serve"])
# A supervisor passes its own level on to its workers (tracebacks only at DEBUG).
parser.add_argument("--log-level", type=str.upper, default="INFO")
add_serve_arguments(parser)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sys.exit(run_serve(parser.parse_args()))
