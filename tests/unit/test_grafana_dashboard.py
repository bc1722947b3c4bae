"""deploy/grafana/gochat-dashboard.json charts only what GoChat exports: every metric a
panel queries is one a GoChat process registers, and every exported metric is charted."""

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gochat-dashboard.json"
SUFFIX = re.compile(r"_(bucket|count|sum|total)$")


def _exported() -> tuple[set[str], set[str]]:
    """(metric families, sample names) that GoChat's processes register."""
    import fanout.metrics  # noqa: F401
    import gochat_project.access_log  # noqa: F401
    import messaging.metrics  # noqa: F401

    kinds = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
    families, samples = set(), set()
    for family in REGISTRY.collect():  # labelled metrics have no sample before first use: go by type
        if family.name.startswith("gochat_"):
            families.add(family.name)
            samples.update(family.name + suffix for suffix in kinds[family.type])
    return families, samples


def test_every_panel_queries_an_exported_metric_and_every_metric_is_charted() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\bgochat_[a-z_]+", expr)}
    families, samples = _exported()
    assert queried and queried <= samples, queried - samples
    assert {SUFFIX.sub("", name) for name in queried} == families


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)
