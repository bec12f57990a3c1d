"""The carbon aggregate: the ``carbon`` repository, recording a measurement (a training
one adds to its job's totals) and the carbon summary of training and inference, whose
inference part reads the usage records' rollups."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from sqlalchemy import case, func, select

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument
from catalog.store.marks import idempotent
from catalog.store.repo import RepoField
from catalog.store.training import TrainingMixin
from catalog.store.usage import UsageColumns, UsageMixin, check_aware, key_order, within


class CarbonMixin(UsageMixin, TrainingMixin):
    """Energy and emissions measurements, and their summary with the usage records'."""

    carbon = RepoField(
        t.CarbonRow, s.CarbonRecord, filters=("source", "training_job_id", "model_id")
    )

    @idempotent
    def record_carbon(self, request: s.CarbonCreate) -> s.CarbonRecord:
        """Store a measurement; a training one also adds to its job's energy and emissions.

        A request whose ``id`` is already stored replaces that row's figures (a node's
        running total written again), and its job's totals change by the difference, so
        writing the same measurement twice counts it once.

        Raises:
            NotFound: ``training_job_id`` names no job.
        """
        with self.session() as session:
            job = None
            if request.training_job_id:
                job = self.training_jobs._get_row(session, request.training_job_id, lock=True)
            row = session.get(t.CarbonRow, request.id) if request.id else None
            old_kwh, old_kg = (row.energy_kwh, row.emissions_kg) if row is not None else (0, 0)
            if row is None:
                row = self.carbon._insert(session, request)
            else:
                values = request.model_dump(mode="json", exclude={"id"}, exclude_unset=True)
                for key, value in values.items():
                    setattr(row, key, value)
            if job is not None:
                job.energy_kwh = (job.energy_kwh or 0.0) + request.energy_kwh - old_kwh
                job.emissions_kg = (job.emissions_kg or 0.0) + request.emissions_kg - old_kg
            session.flush()
            return s.CarbonRecord.model_validate(row)

    @idempotent
    def carbon_summary(
        self, group_by: s.CarbonGroupBy = "model", *, since: datetime | None = None,
        until: datetime | None = None, user_id: str | None = None,
    ) -> s.CarbonSummary:
        """Energy (kWh) and emissions (kg CO2eq) created in ``[since, until)``, optionally
        of one user: seed 002's summary (training vs inference, ``by_model``) plus
        ``rows`` grouped by model, job, day, month or source.

        Training is carbon records of source ``training``; inference is the usage
        records (read from the hourly rollups for whole hours, see
        :meth:`usage_summary`) and carbon records of other sources.
        ``num_training_jobs`` counts the distinct jobs of the training records;
        ``num_inference_requests`` the usage records. ``by_model`` puts usage under its
        ``model_id`` (a record without one under its ``model`` name, e.g. a provider's
        model) and carbon records under theirs, with names from the models table, largest
        emissions first; ``percentage`` is each one's share of the total. In ``rows``,
        usage groups under its ``model_id`` (else its ``model`` name), its day or month,
        or source ``inference``; grouped by job, rows hold carbon records only.

        Raises:
            InvalidArgument: an unknown ``group_by``, or a naive ``since``/``until``.
        """
        if group_by not in get_args(s.CarbonGroupBy):
            raise InvalidArgument("group_by must be model, job, day, month or source",
                                  field="group_by")
        check_aware(since=since, until=until)
        c = t.CarbonRow
        conds = within(c.created_at, since, until)
        if user_id is not None:
            conds.append(c.user_id == user_id)
        group_key = {"model": c.model_id, "job": c.training_job_id, "source": c.source}.get(
            group_by)
        if group_key is None:
            group_key = self._period(c.created_at, group_by)
        periodic = group_by in ("day", "month")

        def usage_key(u: UsageColumns) -> tuple[Any, ...]:
            keys = (u.model_id, case((u.model_id.is_(None), u.model), else_=None))
            return (*keys, self._period(u.time, group_by)) if periodic else keys

        grouped: dict[str | None, list[float]] = {}
        by_model: dict[tuple[str | None, str | None], list[float]] = {}
        training = [0.0, 0.0]  # kWh, kg
        inference = [0.0, 0.0]
        with self.session() as session:
            stmt = select(
                group_key, c.source, c.model_id, func.sum(c.energy_kwh),
                func.sum(c.emissions_kg), func.count(),
            ).where(*conds).group_by(group_key, c.source, c.model_id)
            for k, source, model_id, kwh, kg, n in session.execute(stmt):
                kwh, kg = float(kwh or 0.0), float(kg or 0.0)
                _add(grouped, k, kwh, kg, n)
                _add(by_model, (model_id, None), kwh, kg)
                split = training if source == s.CarbonSource.training else inference
                split[0] += kwh
                split[1] += kg
            num_jobs = session.scalar(select(func.count(func.distinct(c.training_job_id))).where(
                *conds, c.source == s.CarbonSource.training))
            usage = self._usage_sums(session, usage_key, since=since, until=until,
                                     user_id=user_id)
            requests = 0
            for (model_id, name, *period), sums in usage.items():
                requests += sums.requests
                inference[0] += sums.energy_kwh
                inference[1] += sums.emissions_kg
                _add(by_model, (model_id, name), sums.energy_kwh, sums.emissions_kg)
                if group_by != "job":
                    k = period[0] if periodic else (
                        "inference" if group_by == "source" else model_id or name)
                    _add(grouped, k, sums.energy_kwh, sums.emissions_kg, sums.requests)
            ids = [m for m, _ in by_model if m is not None]
            names: dict[str, str] = {
                model_id: name for model_id, name in session.execute(
                    select(t.ModelRow.id, t.ModelRow.name).where(t.ModelRow.id.in_(ids)))
            } if ids else {}
        total_kg = sum(v[1] for v in by_model.values())
        models = [
            s.CarbonByModel(
                model_id=model_id, model_name=names.get(model_id) if model_id else name,
                energy_kwh=v[0], emissions_kg=v[1],
                percentage=min(100.0, 100.0 * v[1] / total_kg) if total_kg > 0 else 0.0,
            )
            for (model_id, name), v in sorted(
                by_model.items(), key=lambda kv: (-kv[1][1], str(kv[0][0]), str(kv[0][1])))
        ]
        rows = [
            s.CarbonSummaryRow(key=k, energy_kwh=v[0], emissions_kg=v[1], records=int(v[2]))
            for k, v in sorted(grouped.items(), key=key_order)
        ]
        return s.CarbonSummary(
            total_emissions_kg=training[1] + inference[1],
            training_emissions_kg=training[1],
            inference_emissions_kg=inference[1],
            total_energy_kwh=training[0] + inference[0],
            num_training_jobs=num_jobs or 0,
            num_inference_requests=requests,
            period={"since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None},
            by_model=models,
            group_by=group_by,
            rows=rows,
        )


def _add(acc: dict[Any, list[float]], key: Any, kwh: float, kg: float, n: int = 0) -> None:
    """Add energy, emissions and a record count to ``acc[key]``."""
    v = acc.setdefault(key, [0.0, 0.0, 0])
    v[0] += kwh
    v[1] += kg
    v[2] += n
