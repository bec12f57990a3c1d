"""``garden carbon``: energy and emissions of training and inference."""

from __future__ import annotations

from datetime import datetime

import typer

from garden.cli.output import api, api_errors, console, print_table


def carbon(
    ctx: typer.Context,
    group_by: str = typer.Option("month", help="model, job, day, month or source."),
    since: datetime | None = None, until: datetime | None = None,
    csv: bool = typer.Option(False, "--csv", help="Print every record as CSV instead."),
) -> None:
    """Energy (kWh) and emissions (kg CO2eq): totals, training vs inference, each model's
    share, and the rows grouped by --group-by."""
    client = api(ctx)
    with api_errors():
        if csv:
            console.print(client.carbon.export_csv(since=since, until=until), end="",
                          markup=False, highlight=False)
            return
        summary = client.carbon.summary(group_by, since=since, until=until)  # type: ignore[arg-type]
    period = summary.period
    console.print(
        f"total {summary.total_emissions_kg:.6f} kg CO2eq, {summary.total_energy_kwh:.6f} kWh"
        f" (from {period.get('since') or 'the start'} to {period.get('until') or 'now'})")
    console.print(f"training  {summary.training_emissions_kg:.6f} kg CO2eq, "
                  f"{summary.num_training_jobs} job(s)")
    console.print(f"inference {summary.inference_emissions_kg:.6f} kg CO2eq, "
                  f"{summary.num_inference_requests} request(s)")
    print_table("carbon by model", ["model id", "name", "kg CO2eq", "energy kWh", "share %"],
                [[m.model_id, m.model_name, f"{m.emissions_kg:.6f}", f"{m.energy_kwh:.6f}",
                  f"{m.percentage:.1f}"] for m in summary.by_model])
    print_table(f"carbon by {summary.group_by}", [group_by, "energy kWh", "kg CO2eq", "records"],
                [[r.key, f"{r.energy_kwh:.6f}", f"{r.emissions_kg:.6f}", r.records]
                 for r in summary.rows])
