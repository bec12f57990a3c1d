"""The gateway's heavy work as Ray tasks: :class:`RayWork` implements
:class:`serve_apps.gateway.work.Work`.

``cluster/deploy.py`` binds a ``RayWork`` into the gateway deployment, so the object is
pickled into each gateway replica and this module is imported there: it must never import
``train_jobs``, ``corpora``, torch or transformers at module level. Each operation is a Ray
task whose body imports ``train_jobs`` (``corpora``, for datasets) and runs in a Ray worker
process, never in the replica (a replica reserves 0.1 CPU; a GGUF conversion loads the
model with torch).

Tasks that read files the gateway wrote (an upload under ``$GARDEN_HOME``) or that the
caller named by a path on the gateway's node (a model ``source``) run on the replica's
node (``NodeAffinitySchedulingStrategy(node_id, soft=False)``). Tasks inherit the
replica's runtime_env, so ``GARDEN_HOME`` and the database URL match the gateway's.

Errors: a task raises only classes the replica can unpickle without ``train_jobs`` or
``corpora`` (catalog errors rebuilt as their :mod:`catalog.errors` class, builtin
exceptions, or ``RuntimeError``); the replica side unwraps Ray's ``RayTaskError`` to that
exception in :func:`_result`.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from catalog import errors
from catalog import schemas as s
from catalog.reconcile import RayJobState
from serve_apps.remote import unwrapped

#: Logical CPUs reserved by a model import (a GGUF conversion), an adapter merge or a
#: dataset validation.
HEAVY_NUM_CPUS = 1.0
#: Logical CPUs of a job submission or cancellation (they wait on the job API).
LIGHT_NUM_CPUS = 0.0


def portable_error(exc: BaseException) -> Exception:
    """``exc`` as an exception a process without ``train_jobs`` or ``corpora`` can unpickle.

    A :class:`catalog.errors.CatalogError` subclass defined elsewhere (e.g.
    ``corpora.registration.DatasetError``, or Ray's wrapper around an error of the catalog
    actor) becomes its nearest :mod:`catalog.errors` class with the same message, field
    and details; builtin exceptions stay as they are; anything else becomes
    ``RuntimeError("<class name>: <message>")``.
    """
    if isinstance(exc, errors.CatalogError):
        cls = next(c for c in type(exc).__mro__ if c.__module__ == errors.__name__)
        return cls(exc.message, field=exc.field, details=exc.details)
    if isinstance(exc, Exception) and type(exc).__module__ == builtins.__name__:
        return exc
    return RuntimeError(f"{type(exc).__name__}: {exc}")


@contextmanager
def _portable_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise portable_error(exc) from exc


@ray.remote(num_cpus=HEAVY_NUM_CPUS, max_retries=0)
def _import_base_model(source: str | None, name: str | None) -> s.Model:
    from pathlib import Path

    from catalog.actor import Catalog
    from train_jobs.base_models import ModelImportError, import_base_model

    with _portable_errors():
        try:
            return import_base_model(Catalog(), Path(source) if source else None, name)
        except ModelImportError as exc:
            raise errors.InvalidArgument(str(exc), field="source") from exc


@ray.remote(num_cpus=HEAVY_NUM_CPUS, max_retries=0)
def _merge_adapter(adapter_id: str, name: str | None, user_id: str | None) -> s.Model:
    from catalog.actor import Catalog
    from train_jobs.merge import merge_adapter

    with _portable_errors():
        catalog = Catalog()
        return merge_adapter(catalog, catalog.models.get(adapter_id), name, user_id)


@ray.remote(num_cpus=HEAVY_NUM_CPUS, max_retries=0)
def _register_dataset(
    path: str, name: str, user_id: str | None, description: str | None, source: str | None,
    filename: str | None, column_mapping: dict[str, str] | None, base_model_id: str | None,
) -> s.Dataset:
    from catalog.actor import Catalog
    from corpora.registration import register_dataset

    with _portable_errors():
        return register_dataset(Catalog(), path, name, user_id=user_id,
                                description=description, source=source, filename=filename,
                                column_mapping=column_mapping, base_model_id=base_model_id)


@ray.remote(num_cpus=LIGHT_NUM_CPUS, max_retries=0)
def _submit_training_job(job_id: str, address: str | None, timeout_s: float) -> str:
    from train_jobs.submit import submit_training_job

    with _portable_errors():
        return submit_training_job(job_id, address=address, timeout_s=timeout_s)


@ray.remote(num_cpus=LIGHT_NUM_CPUS, max_retries=0)
def _cancel_training_job(job_id: str, address: str | None) -> s.TrainingJob:
    from train_jobs.submit import cancel_training_job

    with _portable_errors():
        return cancel_training_job(job_id, address=address)


@ray.remote(num_cpus=LIGHT_NUM_CPUS, max_retries=0)
def _submit_batch(batch_id: str, address: str | None, timeout_s: float) -> str:
    from batch_jobs.submit import submit_batch

    with _portable_errors():
        return submit_batch(batch_id, address=address, timeout_s=timeout_s)


@ray.remote(num_cpus=LIGHT_NUM_CPUS, max_retries=0)
def _cancel_batch(batch_id: str, address: str | None) -> s.Batch:
    from batch_jobs.submit import cancel_batch

    with _portable_errors():
        return cancel_batch(batch_id, address=address)


@ray.remote(num_cpus=LIGHT_NUM_CPUS, max_retries=0)
def _submit_evaluation(evaluation_id: str, address: str | None, timeout_s: float) -> str:
    from eval_jobs.submit import submit_evaluation

    with _portable_errors():
        return submit_evaluation(evaluation_id, address=address, timeout_s=timeout_s)


@ray.remote(num_cpus=LIGHT_NUM_CPUS, max_retries=0)
def _ray_job_states(submission_ids: list[str], address: str | None) -> dict[str, RayJobState]:
    from ray_jobs.submit import ray_job_states

    with _portable_errors():
        return ray_job_states(submission_ids, address=address)


def _on_this_node() -> NodeAffinitySchedulingStrategy:
    """Schedule on the caller's node only (where the files it names are)."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


async def _result(ref: ray.ObjectRef) -> Any:
    """The task's return value.

    Raises:
        CatalogError: the task's catalog error, with its own class
            (:func:`serve_apps.remote.unwrapped`).
        Exception: the task's other (builtin, see :func:`portable_error`) exception.
        RuntimeError: Ray could not run the task (worker crash, node death,
            unschedulable); the Ray error is chained.
    """
    try:
        return await unwrapped(ref)
    except RayTaskError as exc:
        raise exc.cause from exc
    except RayError as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class RayWork:
    """:class:`serve_apps.gateway.work.Work` on Ray tasks (see the module docstring).

    Args:
        dashboard_url: the Ray job API (dashboard) address the submission, cancel and
            job-state tasks use, e.g. ``http://127.0.0.1:8265``; None lets the task discover it
            (``ray_jobs.submit.dashboard_address``).
    """

    dashboard_url: str | None = None

    async def import_base_model(self, source: str | None, name: str | None) -> s.Model:
        task = _import_base_model.options(scheduling_strategy=_on_this_node())
        return await _result(task.remote(source, name))

    async def merge_adapter(
        self, adapter_id: str, name: str | None, user_id: str | None
    ) -> s.Model:
        # reads and writes shared storage only: any node may run it
        return await _result(_merge_adapter.remote(adapter_id, name, user_id))

    async def register_dataset(
        self, path: str, name: str, *, user_id: str | None, description: str | None,
        source: str | None, filename: str | None = None,
        column_mapping: dict[str, str] | None = None, base_model_id: str | None = None,
    ) -> s.Dataset:
        task = _register_dataset.options(scheduling_strategy=_on_this_node())
        return await _result(task.remote(path, name, user_id, description, source, filename,
                                          column_mapping, base_model_id))

    async def submit_training_job(self, job_id: str, *, timeout_s: float) -> str:
        return await _result(_submit_training_job.remote(job_id, self.dashboard_url, timeout_s))

    async def cancel_training_job(self, job_id: str) -> s.TrainingJob:
        return await _result(_cancel_training_job.remote(job_id, self.dashboard_url))

    async def submit_batch(self, batch_id: str, *, timeout_s: float) -> str:
        return await _result(_submit_batch.remote(batch_id, self.dashboard_url, timeout_s))

    async def cancel_batch(self, batch_id: str) -> s.Batch:
        return await _result(_cancel_batch.remote(batch_id, self.dashboard_url))

    async def submit_evaluation(self, evaluation_id: str, *, timeout_s: float) -> str:
        return await _result(_submit_evaluation.remote(evaluation_id, self.dashboard_url,
                                                       timeout_s))

    async def ray_job_states(self, submission_ids: Sequence[str]) -> dict[str, RayJobState]:
        return await _result(_ray_job_states.remote(list(submission_ids), self.dashboard_url))
