"""A frontend's settings (fields.py) and how they are read (environment.py)."""

from registry_service.settings.environment import SettingsError, env_name, file_env_name
from registry_service.settings.fields import (
    SECRET_FILE_VARIABLES,
    Settings,
    add_arguments,
    apply_arguments,
    markdown_table,
    self_preservation_line,
)

__all__ = [
    "SECRET_FILE_VARIABLES",
    "Settings",
    "SettingsError",
    "add_arguments",
    "apply_arguments",
    "env_name",
    "file_env_name",
    "markdown_table",
    "self_preservation_line",
]
