"""The PrometheusRule of node-registry, generated from the plain rules file beside it:
`python deploy/monitoring/rules.py` writes `prometheus-rules.yaml` from `registry-rules.yml`.

The plain file is the one to edit: `promtool check rules` and `promtool test rules` run on it as
shipped, and Prometheus without the Operator loads it as it is. The PrometheusRule wraps the same
text (indented, comments kept) for the Operator; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = Path(__file__).with_name("registry-rules.yml")
OUTPUT = Path(__file__).with_name("prometheus-rules.yaml")
HEADER = """\
# Alerts of node-registry as a Prometheus Operator PrometheusRule, GENERATED from
# registry-rules.yml (the file to edit, a plain Prometheus rules file) by `make dashboard`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: registry
  labels:
    app.kubernetes.io/name: registry
spec:
"""


def render() -> str:
    lines = SOURCE.read_text().splitlines()
    while lines and lines[0].startswith("#"):  # the plain file's own header
        lines.pop(0)
    return HEADER + "".join(f"  {line}\n" if line else "\n" for line in lines)


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
