"""Ray Train callback that writes each report of a job to the catalog.

Runs in the Ray Train controller (``UserCallback.after_report``), so metrics and
checkpoints are recorded once per report, from rank 0's metrics, with the
checkpoint's persisted path, whatever worker group produced them.
"""

from __future__ import annotations

from typing import Any

from ray.train import UserCallback

from catalog import schemas as s
from catalog.port import CatalogPort
from train_jobs.metrics import record_training_step

#: Keys of a report that become a catalog MetricPoint.
METRIC_KEYS = ("step", "epoch", "train_loss", "eval_loss", "perplexity", "learning_rate",
               "tokens_per_second", "memory_mb")


def metric_point(metrics: dict[str, Any]) -> s.MetricPoint:
    """The catalog MetricPoint of one worker report (``step`` and optional metrics)."""
    return s.MetricPoint(**{k: metrics[k] for k in METRIC_KEYS if metrics.get(k) is not None})


class CatalogCallback(UserCallback):
    """Record metrics, eval loss before training and checkpoints (keeping ``keep``), and
    an event with the first step a worker group restarted after a failure reports.

    Args:
        job_id: the catalog training job.
        keep: checkpoints kept, the job's ``save_total_limit`` (as CheckpointConfig keeps).
    """

    def __init__(self, job_id: str, keep: int):
        self.job_id = job_id
        self.keep = keep
        self._catalog: CatalogPort | None = None
        self._restarted = False

    def _cat(self) -> CatalogPort:
        if self._catalog is None:
            from catalog.actor import Catalog

            self._catalog = Catalog()
        return self._catalog

    def __getstate__(self):
        return {"job_id": self.job_id, "keep": self.keep, "_catalog": None,
                "_restarted": False}

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        report = metrics[0]
        cat = self._cat()
        point = metric_point(report)
        if self._restarted:  # the first report of a worker group restarted after a failure
            self._restarted = False
            cat.add_event(self.job_id, s.JobEvent(
                message=f"resumed at step {point.step} after a restart"))
        cat.append_metrics(self.job_id, [point])
        record_training_step(self.job_id, loss=point.train_loss,
                             tokens_per_s=point.tokens_per_second)
        if point.step == 0 and point.eval_loss is not None:
            cat.training_jobs.update(self.job_id, eval_loss_before=point.eval_loss)
        if checkpoint is not None:
            cat.add_checkpoint(
                self.job_id, s.Checkpoint(step=point.step, path=checkpoint.path,
                                          eval_loss=point.eval_loss),
                keep=self.keep,
            )
            cat.add_event(self.job_id, s.JobEvent(
                message=f"checkpoint at step {point.step}: {checkpoint.path}"))

    def after_exception(self, run_context, worker_exceptions: dict[int, Exception]) -> None:
        self._restarted = True
        for rank, exc in sorted(worker_exceptions.items()):
            self._cat().add_event(self.job_id, s.JobEvent(
                level="warning", message=f"worker {rank} failed: {type(exc).__name__}: {exc}"))
