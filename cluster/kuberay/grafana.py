"""Grafana dashboard of Model Garden's metrics on a KubeRay cluster, built with
`grafana-foundation-sdk <https://github.com/grafana/grafana-foundation-sdk>`_.

Ray exports ``ray.util.metrics`` objects to Prometheus with the prefix ``ray_``, so the
metric declared as ``garden_requests_total`` is scraped as ``ray_garden_requests_total``.
The names and tags come from :mod:`serve_apps.observability` (serving),
:mod:`train_jobs.metrics` (training) and, for the queue depth, Ray Serve's own router
gauge ``serve_deployment_queued_queries`` (``ray/serve/_private/router.py``, tags
``deployment``, ``application``, ``handle``, ``actor_id``). ``tests/cluster/kuberay``
checks every expression against those declarations.

``python -m cluster.kuberay.grafana > dashboard.json`` writes the dashboard for a
Grafana provisioning ConfigMap or an import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

#: Prefix Ray's Prometheus exporter gives every ``ray.util.metrics`` metric.
PREFIX = "ray_"
REQUESTS = f"{PREFIX}garden_requests_total"  # Counter: model, kind, status
TOKENS = f"{PREFIX}garden_tokens_total"  # Counter: model, direction
LATENCY = f"{PREFIX}garden_request_latency_seconds"  # Histogram (s): model, kind
TTFT = f"{PREFIX}garden_time_to_first_token_seconds"  # Histogram (s): model
EMISSIONS = f"{PREFIX}garden_emissions_kg_total"  # Counter (kg CO2eq): source
TRAINING_LOSS = f"{PREFIX}garden_training_loss"  # Gauge: job_id
TRAINING_TOKENS = f"{PREFIX}garden_training_tokens_per_second"  # Gauge: job_id
TRAINING_JOBS = f"{PREFIX}garden_training_job_transitions_total"  # Counter: status
#: Ray Serve's router gauge: requests to a deployment waiting for a replica.
SERVE_QUEUED = f"{PREFIX}serve_deployment_queued_queries"

MODEL = 'model=~"$model"'
APP = 'application=~"$app"'
RATE = "[$__rate_interval]"

#: A panel's queries: (PromQL, legend format).
Targets = Sequence[tuple[str, str]]


def _rate(metric: str, by: str, selector: str = "") -> str:
    """``sum by (<by>) (rate(<metric>{<selector>}[$__rate_interval]))``."""
    matchers = f"{{{selector}}}" if selector else ""
    return f"sum by ({by}) (rate({metric}{matchers}{RATE}))"


def _quantiles(histogram: str, by: str, selector: str = "",
               qs: Sequence[float] = (0.5, 0.95)) -> list[tuple[str, str]]:
    """p50/p95 (``histogram_quantile`` over ``<histogram>_bucket``) per ``by`` label."""
    return [(f"histogram_quantile({q}, {_rate(f'{histogram}_bucket', f'{by}, le', selector)})",
             f"p{round(q * 100)} {{{{{by}}}}}") for q in qs]


def _queries(targets: Targets, ds: dm.DataSourceRef, *, instant: bool = False
             ) -> list[cogbuilder.Builder[variants.Dataquery]]:
    """Prometheus queries A, B, ... (range queries, or instant ones)."""
    queries: list[cogbuilder.Builder[variants.Dataquery]] = []
    for i, (expr, legend) in enumerate(targets):
        query = (prometheus.Dataquery().expr(expr).legend_format(legend)
                 .ref_id(chr(ord("A") + i)).datasource(ds))
        queries.append(query.instant() if instant else query)
    return queries


def _timeseries(ds: dm.DataSourceRef, title: str, targets: Targets, *, unit: str,
                description: str, width: int = 12, bars: bool = False
                ) -> timeseries.Panel:
    """A time series panel (8 rows high, ``width`` of 24 columns), lines or bars."""
    panel = (timeseries.Panel().title(title).description(description).datasource(ds)
             .unit(unit).span(width).height(8).targets(_queries(targets, ds)))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    return panel


def _stat(ds: dm.DataSourceRef, title: str, targets: Targets, *, unit: str,
          description: str, width: int = 12) -> stat.Panel:
    """A stat panel of instant queries: one value per series (8 rows high)."""
    return (stat.Panel().title(title).description(description).datasource(ds).unit(unit)
            .span(width).height(8).targets(_queries(targets, ds, instant=True)))


def _query_variable(ds: dm.DataSourceRef, name: str, label: str, metric: str,
                    tag: str) -> gd.QueryVariable:
    """A multi-value variable over ``label_values(<metric>, <tag>)``; All is ``.*``."""
    return (gd.QueryVariable(name).label(label).datasource(ds)
            .query(f"label_values({metric}, {tag})").multi(True).include_all(True)
            .all_value(".*").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC))


def grafana_dashboard(*, datasource_uid: str = "${datasource}",
                      title: str = "Model Garden") -> dict:
    """Grafana dashboard JSON model (schemaVersion 41, Grafana 11.6) of Model Garden.

    ``datasource_uid`` is the Prometheus data source every panel queries; the default
    refers to the dashboard's ``datasource`` variable (type ``datasource``, Prometheus).
    Variables ``model`` and ``app`` (multi-value, All = ``.*``) filter the serving and
    queue panels. Rows, panels and units:

    - Serving: requests/s by model and status class (``2xx``...); non-2xx share of
      requests by model and kind (0-1); tokens/s by model and direction; time to first
      token p50/p95 by model (s); request latency p50/p95 by kind (s); Serve queue depth
      (requests waiting for a replica) by application and deployment.
    - Emissions: kg CO2eq per hour by source, and kg CO2eq emitted over the range (stat).
    - Training: loss and tokens/s by job id; job status transitions per rate interval.

    Metric names are those of :mod:`serve_apps.observability`, :mod:`train_jobs.metrics`
    and Ray Serve's router, with Ray's ``ray_`` prefix. Panel ids run 1, 2, ... and
    panels are laid out left to right on the 24-column grid.
    """
    ds = dm.DataSourceRef(type_val="prometheus", uid=datasource_uid)
    ts, st = _timeseries, _stat
    non_2xx = f'{MODEL}, status!="2xx"'
    all_requests = _rate(REQUESTS, "model, kind", MODEL)
    error_share = (f"({_rate(REQUESTS, 'model, kind', non_2xx)} or 0 * {all_requests})"
                   f" / {all_requests}")
    rows: list[tuple[str, list[timeseries.Panel | stat.Panel]]] = [
        ("Serving", [
            ts(ds, "Requests per second by model and status",
               [(_rate(REQUESTS, "model, status", MODEL), "{{model}} {{status}}")],
               unit="reqps", description=f"rate({REQUESTS}) by model and status class."),
            ts(ds, "Error share (non-2xx) by model and kind",
               [(error_share, "{{model}} {{kind}}")], unit="percentunit",
               description="Share of requests whose status class is not 2xx."),
            ts(ds, "Tokens per second by model and direction",
               [(_rate(TOKENS, "model, direction", MODEL), "{{model}} {{direction}}")],
               unit="short", description="Prompt and completion tokens per second."),
            ts(ds, "Time to first token p50/p95", _quantiles(TTFT, "model", MODEL), unit="s",
               description="Time to the first streamed token, in seconds."),
            ts(ds, "Request latency p50/p95 by kind", _quantiles(LATENCY, "kind", MODEL),
               unit="s", description="End-to-end request latency, in seconds."),
            ts(ds, "Serve queue depth by application",
               [(f"sum by (application, deployment) ({SERVE_QUEUED}{{{APP}}})",
                 "{{application}} / {{deployment}}")], unit="short",
               description="Requests waiting at Ray Serve handles to be assigned a replica "
                           "(serve_deployment_queued_queries)."),
        ]),
        ("Emissions", [
            ts(ds, "Emissions rate by source (kg CO2eq/h)",
               [(f"3600 * {_rate(EMISSIONS, 'source')}", "{{source}}")],
               unit="suffix: kg CO2eq/h", description="Estimated emissions per hour."),
            st(ds, "Emissions over the range by source (kg CO2eq)",
               [(f"sum by (source) (increase({EMISSIONS}[$__range]))", "{{source}}")],
               unit="suffix: kg CO2eq",
               description="Estimated emissions over the dashboard's time range."),
        ]),
        ("Training", [
            ts(ds, "Training loss by job", [(f"max by (job_id) ({TRAINING_LOSS})",
                                             "{{job_id}}")],
               unit="none", width=8, description="Latest training loss of each job."),
            ts(ds, "Training tokens per second by job",
               [(f"max by (job_id) ({TRAINING_TOKENS})", "{{job_id}}")], unit="short",
               width=8, description="Training throughput in tokens/s."),
            ts(ds, "Training job transitions by status",
               [(f"sum by (status) (increase({TRAINING_JOBS}{RATE}))", "{{status}}")],
               unit="short", width=8, bars=True,
               description="Training jobs entering each status, per rate interval."),
        ]),
    ]
    builder = (
        gd.Dashboard(title).uid("model-garden").tags(["model-garden", "ray", "kuberay"])
        .refresh("30s").time("now-1h", "now").tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(gd.DatasourceVariable("datasource").label("Data source")
                       .type("prometheus"))
        .with_variable(_query_variable(ds, "model", "Model", REQUESTS, "model"))
        .with_variable(_query_variable(ds, "app", "Serve application", SERVE_QUEUED,
                                       "application"))
    )
    panel_id = 0
    for row_title, panels in rows:
        panel_id += 1
        builder = builder.with_row(gd.Row(row_title).id(panel_id))
        for panel in panels:
            panel_id += 1
            builder = builder.with_panel(panel.id(panel_id))
    return json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))


if __name__ == "__main__":
    print(json.dumps(grafana_dashboard(), indent=2, sort_keys=True))
