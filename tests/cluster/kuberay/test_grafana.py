"""The Grafana dashboard (:mod:`cluster.kuberay.grafana`) against the metrics it charts.

The declarations are read from source with :mod:`ast`, never imported: ours are the
``Counter``/``Gauge``/``Histogram`` calls of ``serve_apps/observability.py`` and
``train_jobs/metrics.py``; Ray Serve's are the same calls in the installed ``ray/serve``
package. A metric renamed (or a tag key dropped) on either side fails these tests.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.kuberay.grafana import grafana_dashboard

ROOT = Path(__file__).resolve().parents[3]
OURS = (ROOT / "serve_apps" / "observability.py", ROOT / "train_jobs" / "metrics.py")
SERVING = ROOT / "serve_apps" / "observability.py"
#: What Ray's Prometheus exporter puts before every ``ray.util.metrics`` name.
PREFIX = "ray_"
METRIC_TYPES = ("Counter", "Gauge", "Histogram")
#: PromQL words that look like identifiers but are functions, operators or keywords.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "and", "or", "unless"}


@dataclass(frozen=True)
class Metric:
    name: str  # as declared, without Ray's prefix
    type: str  # Counter, Gauge or Histogram
    tags: frozenset[str]
    where: str  # file:line of the declaration

    def series(self) -> dict[str, frozenset[str]]:
        """Exported Prometheus names -> the labels each may be queried by."""
        base = PREFIX + self.name
        if self.type == "Histogram":
            return {f"{base}_bucket": self.tags | {"le"}, f"{base}_sum": self.tags,
                    f"{base}_count": self.tags}
        if self.type == "Counter" and not base.endswith("_total"):
            return {f"{base}_total": self.tags}
        return {base: self.tags}


def declared_metrics(path: Path) -> list[Metric]:
    """The ``Counter/Gauge/Histogram("name", ..., tag_keys=(...))`` calls of a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if kind not in METRIC_TYPES or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        tags: frozenset[str] = frozenset()
        for kw in node.keywords:
            if kw.arg == "tag_keys":
                try:
                    tags = frozenset(ast.literal_eval(kw.value))
                except ValueError:  # not a literal: no tag can be checked against it
                    tags = frozenset()
        found.append(Metric(first.value, kind, tags, f"{path.name}:{node.lineno}"))
    return found


def ray_serve_metrics() -> list[Metric]:
    """Ray Serve's own metrics, from the installed ``ray/serve`` sources."""
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.origin is not None, "ray is not installed"
    serve = Path(spec.origin).parent / "serve"
    return [m for path in sorted(serve.rglob("*.py")) if "tests" not in path.parts
            and '"serve_' in (text := path.read_text(errors="replace"))
            and any(t + "(" in text for t in METRIC_TYPES)
            for m in declared_metrics(path) if m.name.startswith("serve_")]


def series_labels(metrics: list[Metric]) -> dict[str, frozenset[str]]:
    """Exported series name -> its labels; a series declared twice keeps the common ones."""
    out: dict[str, frozenset[str]] = {}
    for metric in metrics:
        for name, labels in metric.series().items():
            out[name] = out[name] & labels if name in out else labels
    return out


@dataclass
class Parsed:
    metrics: set[str]
    grouping: set[str]  # labels of by (...) / without (...)
    matchers: set[tuple[str, str]]  # (metric, label) of metric{label=...}


def parse_promql(expr: str) -> Parsed:
    """Metric names and labels of a PromQL expression (or a ``label_values`` query)."""
    parsed = Parsed(set(), set(), set())
    if m := re.fullmatch(r"\s*label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)\s*", expr):
        parsed.metrics.add(m[1])
        parsed.matchers.add((m[1], m[2]))
        return parsed
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        parsed.grouping |= {label.strip() for label in m[1].split(",") if label.strip()}
    expr = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", expr)

    def selector(m: re.Match[str]) -> str:
        assert m[1], f"a selector without a metric name: {m[0]!r}"
        for label in re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", m[2]):
            parsed.matchers.add((m[1], label))
        return m[1]

    expr = re.sub(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}", selector, expr)
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", expr):
        if m[1] not in PROMQL_WORDS:
            parsed.metrics.add(m[1])
    return parsed


def all_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels += [panel, *panel.get("panels", [])]
    return panels


def queries(dashboard: dict) -> list[str]:
    """Every PromQL of the dashboard: its panels' targets and its query variables."""
    exprs = [t["expr"] for p in all_panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert exprs
    return exprs


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return grafana_dashboard()


@pytest.fixture(scope="module")
def known() -> dict[str, frozenset[str]]:
    ours = [m for path in OURS for m in declared_metrics(path)]
    ray = ray_serve_metrics()
    assert ours, "no metric declaration found in our sources"
    assert ray, "no serve_* metric found in the installed ray/serve"
    return series_labels(ours + ray)


def test_parse_promql_finds_names_and_labels():
    parsed = parse_promql('histogram_quantile(0.95, sum by (kind, le) (rate('
                          'a_bucket{model=~"$model", status!="2xx"}[5m]))) / 3600 * b or c')
    assert parsed.metrics == {"a_bucket", "b", "c"}
    assert parsed.grouping == {"kind", "le"}
    assert parsed.matchers == {("a_bucket", "model"), ("a_bucket", "status")}
    assert parse_promql("label_values(x, app)").matchers == {("x", "app")}


def test_every_metric_is_declared_by_us_or_by_ray_serve(dashboard, known):
    unknown = {(name, expr) for expr in queries(dashboard)
               for name in parse_promql(expr).metrics if name not in known}
    assert not unknown, f"metrics neither declared here nor by Ray Serve: {unknown}"
    used = {n for expr in queries(dashboard) for n in parse_promql(expr).metrics}
    assert all(n.startswith(PREFIX) for n in used)
    assert f"{PREFIX}serve_deployment_queued_queries" in used


def test_every_label_is_a_tag_key_of_its_metric(dashboard, known):
    wrong = []
    for expr in queries(dashboard):
        parsed = parse_promql(expr)
        wrong += [(metric, label, expr) for metric, label in parsed.matchers
                  if label not in known.get(metric, ())]
        wrong += [(metric, label, expr) for metric in parsed.metrics
                  for label in parsed.grouping if label not in known.get(metric, ())]
    assert not wrong, f"labels their metric does not declare: {wrong}"


def test_dashboard_is_json_with_unique_ids_and_no_overlap(dashboard):
    assert json.loads(json.dumps(dashboard, allow_nan=False)) == dashboard
    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    boxes = [(p["title"], p["gridPos"]) for p in panels]
    for title, g in boxes:
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, title
        assert g["x"] + g["w"] <= 24, f"{title} is wider than the grid: {g}"
    for (t1, a), (t2, b) in itertools.combinations(boxes, 2):
        apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                 or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
        assert apart, f"{t1!r} {a} overlaps {t2!r} {b}"
    for panel in panels:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert all(refs) and len(refs) == len(set(refs)), panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dashboard["schemaVersion"] >= 39


def test_datasource_and_title_reach_every_panel():
    dashboard = grafana_dashboard(datasource_uid="prom-uid", title="Garden on k8s")
    assert dashboard["title"] == "Garden on k8s"
    for panel in all_panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "prom-uid"}
            assert all(t["datasource"]["uid"] == "prom-uid" for t in panel["targets"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in all_panels(grafana_dashboard())
               if p["type"] != "row")


@pytest.mark.parametrize("metric", [m for path in OURS for m in declared_metrics(path)],
                         ids=lambda m: f"{m.name}@{m.where}")
def test_each_of_our_metrics_is_charted(dashboard, metric):
    used = {n for expr in queries(dashboard) for n in parse_promql(expr).metrics}
    assert used & set(metric.series()), f"{metric.name} ({metric.where}) is on no panel"


def test_serving_metrics_are_all_found():
    """The serving module's five garden_* metrics, so the parametrization is not empty."""
    assert len([m for m in declared_metrics(SERVING) if m.name.startswith("garden_")]) == 5
