"""The gateway's port to heavy work: base-model import, adapter merges, dataset
registration, training job, batch and evaluation submission and the Ray job API, which
never run inside a gateway replica.

The gateway owns this :class:`Work` protocol and receives an implementation by injection
(``build_gateway_app(config, work)``); the cluster provides one that runs each operation
as a Ray task (:class:`cluster.work.RayWork`), tests may pass a fake. The gateway imports
neither ``train_jobs`` nor torch: DESIGN.md's layering, ``serve_apps -> catalog`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from catalog import schemas as s
from catalog.reconcile import RayJobState


class Work(Protocol):
    """Heavy operations a route asks for and awaits.

    Errors: :class:`catalog.errors.CatalogError` subclasses with their own class (for
    example InvalidArgument with ``field`` and ``details``, NotFound, InvalidTransition,
    Unavailable); any other failure of the work itself (a crashed worker, an unreachable
    job API) as ``RuntimeError`` or ``OSError``.
    """

    async def import_base_model(self, source: str | None, name: str | None) -> s.Model:
        """Convert or copy a base model into storage and register it (kind ``base``).

        Args:
            source: path, on the gateway's node, of a ``.gguf`` file or a Hugging Face
                model folder; None imports the bundled SmolLM2-135M-Instruct.
            name: catalog name; None derives it from the source.

        Returns the registered model; a name already registered as a base model with its
        weights in place is returned as is (idempotent). Raises InvalidArgument naming
        ``source`` for a source that cannot be imported.
        """
        ...

    async def merge_adapter(
        self, adapter_id: str, name: str | None, user_id: str | None
    ) -> s.Model:
        """Merge the LoRA adapter ``adapter_id`` into its base model's weights (PEFT's
        ``merge_and_unload``), store the result and register it as a base model with
        ``base_model_id`` the adapter's base and ``merged_from_id`` the adapter.

        Args:
            adapter_id: catalog id of the adapter (the route has checked the caller may
                read it).
            name: catalog name of the merged model; None: ``<adapter name>-merged``.
            user_id: its owner (the caller).

        Returns the registered model; one already merged from the adapter for
        ``user_id`` (and ``name``, when given) with its weights in place is returned as
        is (idempotent). Raises NotFound, InvalidArgument naming ``model_id`` when the
        model is not an adapter.
        """
        ...

    async def register_dataset(
        self, path: str, name: str, *, user_id: str | None, description: str | None,
        source: str | None, filename: str | None = None,
        column_mapping: dict[str, str] | None = None, base_model_id: str | None = None,
    ) -> s.Dataset:
        """Validate every row of the dataset file ``path`` (on the gateway's node: JSONL, a
        JSON array, CSV or Parquet, recognised by content and ``filename``'s extension),
        store its rows as JSONL and register it, with its schema and statistics, as the
        next version of ``name``.

        Args:
            filename: the user's name of the file (error messages name it).
            column_mapping: ``{file column: row field}`` renames applied first.
            base_model_id: catalog id of the model whose tokenizer counts the statistics'
                lengths (characters when None).

        Raises InvalidArgument (``field="file"``, ``details`` listing each bad line as
        ``{"line", "field", "message"}``, ``"row"`` instead of ``"line"`` for Parquet) for
        an invalid file, InvalidArgument (``field="base_model_id"``) for a model without a
        tokenizer, Conflict for a concurrent registration of the same version.
        """
        ...

    async def submit_training_job(self, job_id: str, *, timeout_s: float) -> str:
        """Submit the pending catalog job ``job_id`` as a Ray job; return its submission id.

        ``timeout_s``: how long to retry while the cluster's job agent is not up yet, s.
        Raises NotFound, InvalidTransition (not pending), InvalidArgument (the cluster
        cannot run it; the job is left pending) or Unavailable (the job API refused it;
        the job is marked failed).
        """
        ...

    async def cancel_training_job(self, job_id: str) -> s.TrainingJob:
        """Mark the job cancelled and stop its Ray job; return the job.

        Raises NotFound, or InvalidTransition when the job already ended.
        """
        ...

    async def submit_batch(self, batch_id: str, *, timeout_s: float) -> str:
        """Submit the validating batch ``batch_id`` as a Ray job (``python -m
        batch_jobs.run --batch-id ID``, submission id ``garden-batch-<id>``); return its
        submission id.

        ``timeout_s``: how long to retry while the cluster's job agent is not up yet, s.
        Raises NotFound, InvalidTransition (not validating, or already submitted) or
        Unavailable (the job API refused it; the batch is marked failed).
        """
        ...

    async def cancel_batch(self, batch_id: str) -> s.Batch:
        """Mark the batch cancelling and stop its Ray job (it then ends cancelled with
        the lines done so far); return the batch.

        Raises NotFound, or InvalidTransition when the batch already ended.
        """
        ...

    async def submit_evaluation(self, evaluation_id: str, *, timeout_s: float) -> str:
        """Submit the pending evaluation ``evaluation_id`` as a Ray job (``python -m
        eval_jobs.run --evaluation-id ID``, submission id ``garden-eval-<id>``); return
        its submission id.

        ``timeout_s``: how long to retry while the cluster's job agent is not up yet, s.
        Raises NotFound, InvalidTransition (not pending, or already submitted) or
        Unavailable (the job API refused it; the evaluation is marked failed).
        """
        ...

    async def ray_job_states(self, submission_ids: Sequence[str]) -> dict[str, RayJobState]:
        """The state of each Ray job of ``submission_ids`` that the cluster's job API
        lists, by submission id, read in one call (``JobSubmissionClient.list_jobs``); an
        id the job API does not list is absent (what the reconciler,
        :mod:`serve_apps.gateway.reconcile`, counts as not found).

        Raises RuntimeError or OSError when the job API cannot answer (then nothing may be
        taken as not found).
        """
        ...
