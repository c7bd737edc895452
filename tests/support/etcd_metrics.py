"""Reads etcd's own Prometheus metrics (served on its client port)."""

from __future__ import annotations

import re
import urllib.request


def metric(endpoint: str, name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels`."""
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
