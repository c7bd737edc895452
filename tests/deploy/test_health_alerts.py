"""The health checks' alert (deploy/monitoring/health-alerts.yaml), checked by promtool as the
other rules are: its syntax, and a case where it fires for one datacenter and not for two
others; and the metric it reads is one a frontend exports (the README's metrics table, which
tests/deploy/test_monitoring.py holds to a live frontend)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.test_monitoring import MONITORING, README, _promtool


def _write(directory: Path) -> None:
    document = yaml.safe_load((MONITORING / "health-alerts.yaml").read_text())
    assert document["kind"] == "PrometheusRule"
    (directory / "health-rules.yml").write_text(yaml.safe_dump(document["spec"]))
    shutil.copy(MONITORING / "health-alerts-test.yaml", directory / "health-alerts-test.yaml")


def test_the_alert_passes_promtools_checks_and_its_cases(tmp_path):
    _write(tmp_path)
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(tmp_path / "health-rules.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [_promtool(), "test", "rules", "health-alerts-test.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_alert_reads_a_metric_the_readme_documents():
    text = (MONITORING / "health-alerts.yaml").read_text()
    for name in set(re.findall(r"noderegistry_\w+", text)):
        assert f"| `{name}` |" in README, name
