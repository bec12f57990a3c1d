"""``client.carbon``: energy (kWh) and emissions (kg CO2eq) summaries (seed 002's
``CarbonSummary``), a job's footprint, records, CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog.schemas import CarbonGroupBy, CarbonRecord, CarbonSummary, Page
from garden.client.base import Namespace


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


class Carbon(Namespace):
    def summary(
        self, group_by: CarbonGroupBy = "month", *,
        since: datetime | None = None, until: datetime | None = None,
    ) -> CarbonSummary:
        """The footprint over ``[since, until)``: total, training and inference emissions,
        energy, job and request counts, ``by_model`` shares, and ``rows`` grouped by
        period, model, job or source."""
        params = {"group_by": group_by, "since": _iso(since), "until": _iso(until)}
        data = self._client.request("GET", "/v1/carbon/summary", params={
            k: v for k, v in params.items() if v is not None}).json()
        return CarbonSummary.model_validate(data)

    def records(self, *, source: str | None = None, page_size: int = 50,
                cursor: str | None = None) -> Page[CarbonRecord]:
        return self._page(CarbonRecord, "/v1/carbon/records",
                          {"source": source, "page_size": page_size, "cursor": cursor})

    def job(self, job_id: str) -> dict[str, Any]:
        """A training job's footprint (seed 002's ``JobCarbonDetails``)::

            {"job_id", "total_emissions_kg", "total_energy_kwh", "duration_seconds",
             "carbon_intensity" (g CO2eq/kWh), "location",
             "breakdown": {"cpu_power_w", "gpu_power_w", "ram_power_w", "cpu_energy_kwh",
                           "gpu_energy_kwh", "ram_energy_kwh"},
             "timeline": [{"timestamp", "emissions_kg" (cumulative), "power_w"}],
             "records": [CarbonRecord as JSON]}
        """
        return self._client.request("GET", f"/v1/carbon/jobs/{job_id}").json()

    def export_csv(self, *, since: datetime | None = None, until: datetime | None = None,
                   source: str | None = None) -> str:
        """Every matching record as CSV text (header row first)."""
        params = {"since": _iso(since), "until": _iso(until), "source": source}
        return self._client.request("GET", "/v1/carbon/export.csv", params={
            k: v for k, v in params.items() if v is not None}).text
