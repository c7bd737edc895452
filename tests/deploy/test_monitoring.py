"""deploy/monitoring, checked: the alert rules by promtool (syntax and a unit test per alert, on
the plain rules file as shipped), the PrometheusRule against that file, each alert's runbook
against docs/deploy.md, the dashboard against its code, and both against what a live frontend
(and a live etcd, for the etcd alerts) exports; the README's metrics table and panel list
against the same.

promtool comes from Debian's `prometheus` package (`make test` installs it as `make run` would
etcd); a missing promtool fails here with what to do, it is never skipped.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
README = (REPO / "README.md").read_text()
EXPORTED_PREFIXES = r"(?:noderegistry|grpc_server|process|python)_\w+"


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, (
        "promtool is missing: install Debian's `prometheus` package (apt-get install prometheus; "
        "`make test` does this when it runs as root)"
    )
    return path


def _dashboard_module() -> Any:
    spec = importlib.util.spec_from_file_location("dashboard", MONITORING / "dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboard"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, MONITORING / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "registry-rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "registry-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_production_overlay_ships_the_rules_and_the_dashboard():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy/k8s/overlays/production")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    (rule,) = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    assert (
        rule["spec"] == yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())["spec"]
    )
    (dashboard,) = [
        doc
        for doc in docs
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "registry-dashboard"
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["registry-dashboard.json"] == _dashboard_module().render()
    # Every alert written under deploy/monitoring is one the overlay deploys (a rule file kept
    # beside the kustomization's resources would pass promtool and never reach Prometheus).
    written = {
        rule["alert"]
        for path in sorted(MONITORING.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if isinstance(document, dict) and document.get("kind") == "PrometheusRule"
        for group in document["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    deployed = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert written == deployed and "NodeRegistryManyNodesFailing" in deployed


def test_promtool_checks_the_plain_rules_file_as_shipped():
    result = subprocess.run(
        [_promtool(), "check", "rules", "registry-rules.yml"],
        capture_output=True,
        text=True,
        cwd=MONITORING,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass():
    result = subprocess.run(
        [_promtool(), "test", "rules", "rules-test.yaml"],
        capture_output=True,
        text=True,
        cwd=MONITORING,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_holds_the_plain_file_s_rules():
    shipped = (MONITORING / "prometheus-rules.yaml").read_text()
    assert shipped == _module("rules").render(), "run `make dashboard`"
    document = yaml.safe_load(shipped)
    assert document["kind"] == "PrometheusRule"
    assert document["spec"] == yaml.safe_load((MONITORING / "registry-rules.yml").read_text())


def test_every_alert_links_its_runbook_section_of_the_deploy_guide():
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (REPO / "docs" / "deploy.md").read_text().splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/deploy.md"), url
        assert anchor == rule["alert"].lower() and anchor in headings, (rule["alert"], url)


@pytest.mark.integration
def test_the_etcd_alerts_query_metrics_a_live_etcd_exports(etcd):
    with urllib.request.urlopen(f"http://{etcd.endpoint}/metrics", timeout=5) as response:
        exported = {
            line.split("{")[0].split(" ")[0]
            for line in response.read().decode().splitlines()
            if line and not line.startswith("#")
        }
    queried = {name for rule in _rules() for name in re.findall(r"\betcd_\w+", rule["expr"])}
    assert queried, "no etcd alert"
    assert not queried - exported, "queried but not exported by etcd"


def test_every_alert_has_a_unit_test_where_it_fires():
    tests = yaml.safe_load((MONITORING / "rules-test.yaml").read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in _rules()} == firing


def test_the_dashboard_json_is_what_its_code_generates():
    assert (MONITORING / "registry-dashboard.json").read_text() == _dashboard_module().render(), (
        "run `make dashboard`"
    )


def test_the_readme_lists_every_dashboard_panel():
    section = README.split("<!-- dashboard:start -->\n")[1].split("\n<!-- dashboard:end -->")[0]
    assert section == _dashboard_module().readme_section(), "copy readme_section() to the README"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    queries = [
        query.replace("$__rate_interval", "5m").replace("${datasource}", "")
        for query in _dashboard_queries()
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": query}
                    for i, query in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _readme_metrics() -> dict[str, set[str]]:
    """The README's metrics table: name -> labels."""
    table = README.split("<!-- metrics:start -->\n")[1].split("\n<!-- metrics:end -->")[0]
    metrics = {}
    for row in table.splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name, labels = cells[0].strip("`"), cells[2]
        metrics[name] = {label.strip() for label in labels.split(",") if label.strip()}
    return metrics


@pytest.mark.integration
async def test_a_live_host_exports_every_metric_the_dashboard_rules_and_readme_name(
    etcd, spawn_frontend
):
    from prometheus_client.parser import text_string_to_metric_families

    from tests.support.api import WatchRecorder, node, register
    from tests.support.frontends import stub as stub_for
    from tests.support.http import get
    from tests.support.waiting import eventually

    supervisor = await spawn_frontend(etcd.endpoint, workers=2)
    admin = re.search(r"admin (http://\S+)\)", supervisor.ready_line).group(1)
    channel, stub = stub_for(supervisor.address)
    recorder = WatchRecorder(stub).start()
    await register(stub, node("mon-1"), ttl=30)
    await recorder.wait_for_node("mon-1")

    async def leader_counts_nodes() -> bool:
        return "noderegistry_nodes{" in (await get(f"{admin}/metrics"))[1]

    await eventually(leader_counts_nodes, message="the leading worker reports nodes")
    _, text = await get(f"{admin}/metrics")
    await recorder.close()
    await channel.close()

    documented_families: dict[str, set[str]] = {}  # as the README names them
    series: set[str] = set()  # as queries name them
    for family in text_string_to_metric_families(text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        documented_families[name] = {
            label for sample in family.samples for label in sample.labels
        } - {"le", "worker"}
        if family.type == "histogram":
            series.update(f"{name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        else:
            series.add(name)
    queried = {
        name
        for query in [*_dashboard_queries(), *(rule["expr"] for rule in _rules())]
        for name in re.findall(EXPORTED_PREFIXES, query)
    }
    assert not queried - series, "queried but not exported"

    documented = _readme_metrics()
    assert not set(documented_families) - set(documented), "exported, not in the README's table"
    assert not set(documented) - set(documented_families), "in the README's table, not exported"
    for name, labels in documented.items():
        if documented_families[name]:  # a labelled metric without samples yet shows no labels
            assert documented_families[name] == labels, name


def test_the_dashboard_picks_its_frontends_by_job_and_namespace_and_times_rpcs():
    dashboard = json.loads((MONITORING / "registry-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["job"]["query"]["query"] == "label_values(noderegistry_build_info, job)"
    assert "namespace" in variables and variables["namespace"]["includeAll"]
    for query in _dashboard_queries():
        for series in re.findall(rf"{EXPORTED_PREFIXES}\{{[^}}]*\}}", query):
            assert 'job=~"$job", namespace=~"$namespace"' in series, query
        assert re.findall(EXPORTED_PREFIXES, query) == re.findall(
            rf"{EXPORTED_PREFIXES}(?=\{{)", query
        ), f"a series without the variables' selector: {query}"
    (rpc,) = [panel for panel in dashboard["panels"] if panel["title"] == "RPC latency"]
    assert all("grpc_server_handling_seconds_bucket" in t["expr"] for t in rpc["targets"])
