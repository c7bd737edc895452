"""The run's figures and goals: printed as they come, then as one table beside the previous run's,
and written as JSON (`<time>-<profile>.json` and `latest-<profile>.json`)."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Results:
    profile: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        baseline: str = "",
        base: float = 0.0,
        **extra: Any,
    ) -> None:
        """One figure; with `baseline`, its same-run baseline `base` and their ratio."""
        row = {"figure": figure, "value": round(value, 6), "unit": unit, **extra}
        if baseline:
            row.update(
                baseline=baseline,
                baseline_value=round(base, 6),
                ratio=round(value / base, 3) if base else None,
            )
        self.rows.append(row)
        print(
            f"  {figure}: {value:.4g} {unit}"
            + (f"  ({baseline}: {base:.4g}, ratio {row['ratio']})" if baseline else ""),
            flush=True,
        )

    def not_measured(self, figure: str, reason: str) -> None:
        """A figure this run could not take (said in the table, never left out)."""
        self.rows.append({"figure": figure, "value": None, "unit": "", "not_measured": reason})
        print(f"  {figure}: not measured ({reason})", flush=True)

    def goal(self, name: str, met: bool | None, detail: str) -> None:
        """A goal: met, not met, or None when this run could not measure it (said why)."""
        self.goals.append({"goal": name, "met": met, "detail": detail})
        print(f"  goal {verdict(met)}: {name} ({detail})", flush=True)


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "NOT MET"


def report(results: Results, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Prints the table (each figure beside the previous run's) and the goals; returns the JSON
    document."""
    before = {row["figure"]: row["value"] for row in (previous or {}).get("rows", [])}
    print("\n| figure | value | baseline (same run) | ratio | previous run | ratio |")
    print("|---|---|---|---|---|---|")
    for row in results.rows:
        if row["value"] is None:
            print(f"| {row['figure']} | not measured: {row['not_measured']} |  |  |  |  |")
            continue
        old = before.get(row["figure"])
        base = f"{row['baseline']}: {row['baseline_value']:.4g}" if "baseline" in row else ""
        print(
            f"| {row['figure']} | {row['value']:.4g} {row['unit']} | {base} | "
            f"{row.get('ratio') or ''} | {'' if old is None else f'{old:.4g}'} | "
            f"{'' if not old else round(row['value'] / old, 2)} |"
        )
    print("\n| goal | met | measured |\n|---|---|---|")
    for goal in results.goals:
        print(f"| {goal['goal']} | {verdict(goal['met'])} | {goal['detail']} |")
    return {
        "profile": results.profile,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "rows": results.rows,
        "goals": results.goals,
    }


def previous_run(output: Path, profile: str) -> dict[str, Any] | None:
    latest = output / f"latest-{profile}.json"
    return json.loads(latest.read_text()) if latest.exists() else None  # type: ignore[no-any-return]


def write(output: Path, document: dict[str, Any], *, partial: bool = False) -> Path:
    """Writes the document under its time and, for a whole run, as the profile's latest (a run of
    some families only leaves the latest whole run to compare with); returns what it wrote last."""
    text = json.dumps(document, indent=2)
    profile = document["profile"] + ("-only" if partial else "")
    dated = output / f"{document['time'].replace(':', '')}-{profile}.json"
    dated.write_text(text)
    if partial:
        return dated
    latest = output / f"latest-{profile}.json"
    latest.write_text(text)
    return latest
