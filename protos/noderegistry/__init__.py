"""The wire contract shared by the SDK and the service (`noderegistry.v1`, generated from
protos/), and the one place the distribution's version is written (pyproject reads it)."""

__version__ = "0.1.0"
