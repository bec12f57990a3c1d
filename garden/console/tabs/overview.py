"""Overview: cluster health, Serve applications and replicas, CPUs and GPUs in use, and
links to the Ray dashboard and the API docs (``GET /health``, ``GET /v1/system``)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from garden.console.common import ConsoleConfig, api, shows_errors


def health_table(report: dict[str, Any]) -> list[list[str]]:
    """``/health`` components as rows ``[component, status, detail]``."""
    return [[name, c["status"], c.get("detail") or ""]
            for name, c in report["components"].items()]


def apps_table(system: dict[str, Any]) -> list[list[Any]]:
    """``/v1/system``'s Serve apps as rows ``[app, deployment, status, running replicas,
    other replicas]`` (other: starting, stopping, unhealthy ...)."""
    rows = []
    for app, info in system.get("serve", {}).items():
        for name, dep in info["deployments"].items():
            running = dep["replicas"].get("RUNNING", 0)
            other = ", ".join(f"{n} {state.lower()}" for state, n in dep["replicas"].items()
                              if state != "RUNNING")
            rows.append([app, name, dep["status"], running, other])
    return rows


def resources_text(report: dict[str, Any], system: dict[str, Any],
                   config: ConsoleConfig) -> str:
    """Markdown: overall health, CPUs and GPUs in use of the total, nodes, the links."""
    cpus, gpus = system["cpus"], system["gpus"]
    links = ["[API docs](/docs)"]
    if system.get("dashboard_url") or config.dashboard_url:
        links.append(f"[Ray dashboard]({system.get('dashboard_url') or config.dashboard_url})")
    return "\n".join([
        f"**Cluster {report['status']}**, {system['nodes']} node(s), "
        f"database {system['database']}",
        f"- CPUs in use: {cpus['total'] - cpus['available']:g} of {cpus['total']:g}",
        f"- GPUs in use: {gpus['total'] - gpus['available']:g} of {gpus['total']:g}",
        f"- Storage: {system['storage']['free_bytes'] / 1e9:.1f} GB free",
        "",
        " · ".join(links),
    ])


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    summary = gr.Markdown(elem_id="overview-summary")
    with gr.Row():
        health = gr.Dataframe(headers=["component", "status", "detail"], label="Health",
                              interactive=False, elem_id="overview-health")
        apps = gr.Dataframe(headers=["app", "deployment", "status", "running replicas",
                                     "other replicas"],
                            label="Serve applications", interactive=False,
                            elem_id="overview-apps")
    refresh = gr.Button("Refresh", size="sm")

    @shows_errors
    def load(key_value: str | None) -> tuple[Any, ...]:
        with api(config, key_value) as client:
            report, system = client.health(), client.system()
        return (resources_text(report, system, config), health_table(report),
                apps_table(system))

    signed_in.then(load, key, [summary, health, apps])
    tab.select(load, key, [summary, health, apps])
    refresh.click(load, key, [summary, health, apps])
