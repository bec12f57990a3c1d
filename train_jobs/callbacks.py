"""Ray Train callback that writes each report of a job to the catalog.

Runs in the Ray Train controller (``UserCallback.after_report``), so metrics and
checkpoints are recorded once per report, from rank 0's metrics, with the
checkpoint's persisted location (a path, or a storage URI such as ``s3://...``),
whatever worker group produced them. The reports are the ones
:class:`train_jobs.engine.ReportCallback` makes. Each worker group's placement (the
node of every rank) becomes an event, and the energy totals of the worker measuring
each node become that node's carbon record (:func:`train_jobs.carbon.node_record`).

Every write here is idempotent (metric points and checkpoints are keyed by step,
carbon records by job and node, events by their time), so the catalog port repeats
them while the catalog actor restarts and a report is never dropped.
"""

from __future__ import annotations

from typing import Any

from ray.train import UserCallback

from catalog import schemas as s
from catalog import storage
from catalog.port import CatalogPort
from train_jobs.carbon import NodeSessions, node_record
from train_jobs.engine import REPORT_KIND, perplexity
from train_jobs.metrics import record_training_step

#: Keys of a report that become fields of a catalog MetricPoint.
METRIC_KEYS = ("step", "epoch", "train_loss", "eval_loss", "learning_rate",
               "tokens_per_second", "memory_mb", "extra")


def metric_point(metrics: dict[str, Any], method: str = "sft") -> s.MetricPoint:
    """The catalog MetricPoint of one worker report; perplexity = exp(eval loss) for sft
    (dpo's eval loss is a preference loss, not a cross-entropy)."""
    values = {k: metrics[k] for k in METRIC_KEYS if metrics.get(k) is not None}
    if method == s.TrainingMethod.sft and values.get("eval_loss") is not None:
        values["perplexity"] = perplexity(values["eval_loss"])
    return s.MetricPoint(**values)


def progress_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """The job's progress columns from a metric report (seed 002's TrainingJob)."""
    total = int(metrics.get("total_steps") or 0)
    step = int(metrics["step"])
    return {"current_step": step, "total_steps": total,
            "progress": min(1.0, step / total) if total else 0.0,
            "current_epoch": float(metrics.get("epoch") or 0.0),
            "total_epochs": float(metrics.get("total_epochs") or 0.0)}


class CatalogCallback(UserCallback):
    """Record metrics, progress, eval loss before training and checkpoints (the catalog
    keeps the same ones as Ray's CheckpointConfig), each worker group's nodes, the
    energy of each node, and an event with the first step a worker group restarted
    after a failure reports.

    Args:
        job: the catalog training job.
        keep: checkpoints kept, the job's ``save_total_limit``.
    """

    def __init__(self, job: s.TrainingJob, keep: int):
        self.job = job
        self.job_id = job.id
        self.keep = keep
        self.method = str(job.method)
        self._catalog: CatalogPort | None = None
        self._restarted = False
        self._placed = False
        self._energy = NodeSessions()

    def _cat(self) -> CatalogPort:
        if self._catalog is None:
            from catalog.actor import Catalog

            self._catalog = Catalog()
        return self._catalog

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_catalog"] = None
        return state

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        report = metrics[0]
        cat = self._cat()
        step = int(report["step"])
        if not self._placed:  # the first report of a worker group
            self._placed = True
            nodes = ", ".join(f"rank {rank} on node {m.get('node_id') or '?'}"
                              for rank, m in enumerate(metrics))
            cat.add_event(self.job_id, s.JobEvent(message=f"workers placed: {nodes}"))
        if self._restarted:  # the first report of a worker group restarted after a failure
            self._restarted = False
            source = report.get("resumed_from") or "no checkpoint"
            cat.add_event(self.job_id, s.JobEvent(
                message=f"resumed at step {step} from {source} after a restart"))
        self._record_energy(cat, metrics)
        if report.get(REPORT_KIND) == "checkpoint":
            if checkpoint is not None:
                self._record_checkpoint(cat, report, checkpoint)
            return
        point = metric_point(report, self.method)
        cat.append_metrics(self.job_id, [point])
        updates = progress_fields(report)
        if step == 0 and point.eval_loss is not None:
            updates["eval_loss_before"] = point.eval_loss
        cat.training_jobs.update(self.job_id, **updates)
        record_training_step(self.job_id, loss=point.train_loss,
                             tokens_per_s=point.tokens_per_second)

    def _record_energy(self, cat: CatalogPort, metrics: list[dict[str, Any]]) -> None:
        """Rewrite the carbon record of every node whose tracker reported: its totals,
        CPU/GPU/RAM breakdown, location, carbon intensity, and its timeline with this
        report's point added (:meth:`train_jobs.carbon.NodeSessions.node`)."""
        nodes = {self._energy.update(m["carbon"]) for m in metrics if m.get("carbon")}
        for node_id in sorted(nodes):
            cat.record_carbon(node_record(self.job, node_id, self._energy.node(node_id)))

    def _record_checkpoint(self, cat: CatalogPort, report: dict[str, Any], checkpoint) -> None:
        step = int(report["step"])
        location = storage.uri_of(checkpoint.filesystem, checkpoint.path)
        cat.add_checkpoint(
            self.job_id,
            s.Checkpoint(step=step, path=location, eval_loss=report.get("eval_loss"),
                         train_loss=report.get("train_loss"),
                         size_bytes=storage.size_bytes(location)),
            keep=self.keep,
        )
        cat.add_event(self.job_id, s.JobEvent(
            message=f"checkpoint at step {step}: {location}"))

    def after_exception(self, run_context, worker_exceptions: dict[int, Exception]) -> None:
        self._restarted = True
        self._placed = False
        for rank, exc in sorted(worker_exceptions.items()):
            self._cat().add_event(self.job_id, s.JobEvent(
                level="warning", message=f"worker {rank} failed: {type(exc).__name__}: {exc}"))
