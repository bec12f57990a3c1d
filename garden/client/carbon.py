"""``client.carbon``: energy (kWh) and emissions (kg CO2eq) summaries, records, CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from catalog.schemas import CarbonRecord, CarbonSummary, Page
from garden.client.base import Namespace


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


class Carbon(Namespace):
    def summary(
        self, group_by: Literal["model", "job", "day", "month", "source"] = "month", *,
        since: datetime | None = None, until: datetime | None = None,
    ) -> CarbonSummary:
        """Totals grouped by period, model, job or source, over ``[since, until)``."""
        params = {"group_by": group_by, "since": _iso(since), "until": _iso(until)}
        data = self._client.request("GET", "/v1/carbon/summary", params={
            k: v for k, v in params.items() if v is not None}).json()
        return CarbonSummary.model_validate(data)

    def records(self, *, source: str | None = None, page_size: int = 50,
                cursor: str | None = None) -> Page[CarbonRecord]:
        return self._page(CarbonRecord, "/v1/carbon/records",
                          {"source": source, "page_size": page_size, "cursor": cursor})

    def job(self, job_id: str) -> dict[str, Any]:
        """``{"job_id", "energy_kwh", "emissions_kg", "records": [...]}``."""
        return self._client.request("GET", f"/v1/carbon/jobs/{job_id}").json()

    def export_csv(self, *, since: datetime | None = None, until: datetime | None = None,
                   source: str | None = None) -> str:
        """Every matching record as CSV text (header row first)."""
        params = {"since": _iso(since), "until": _iso(until), "source": source}
        return self._client.request("GET", "/v1/carbon/export.csv", params={
            k: v for k, v in params.items() if v is not None}).text
