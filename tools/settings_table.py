"""Rewrites the configuration table in README.md from registry_service/settings/fields.py."""

from pathlib import Path

from registry_service.settings import markdown_table

START, END = "<!-- settings:start -->", "<!-- settings:end -->"
readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
head, _, rest = text.partition(START)
_, _, tail = rest.partition(END)
readme.write_text(f"{head}{START}\n{markdown_table()}\n{END}{tail}")
