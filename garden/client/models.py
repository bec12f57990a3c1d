"""``client.models``: list, get, lineage, import a base model, merge an adapter, publish,
delete, evaluate an adapter against its base model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from catalog.lifecycle import TERMINAL_EVALUATION_STATUSES
from catalog.schemas import Evaluation, Model, ModelKind, ModelLineage, Page
from garden.client.base import Namespace


class Models(Namespace):
    def list(
        self, *, kind: ModelKind | str | None = None, name: str | None = None,
        base_model_id: str | None = None, published: bool | None = None,
        page_size: int = 50, cursor: str | None = None,
    ) -> Page[Model]:
        """One page of models: the caller's own, or with ``published=True`` every published
        one (base models included)."""
        params = {"kind": kind, "name": name, "base_model_id": base_model_id,
                  "published": None if published is None else str(published).lower(),
                  "page_size": page_size, "cursor": cursor}
        return self._page(Model, "/v1/models", params)

    def iterate(self, **filters: Any) -> Iterator[Model]:
        return self._iterate(Model, "/v1/models", {"page_size": 200, **filters})

    def get(self, ref: str) -> Model:
        """A model by id, name (latest version) or ``name:version``."""
        return Model.model_validate(self._client.request("GET", f"/v1/models/{ref}").json())

    def lineage(self, ref: str) -> ModelLineage:
        """Model ``ref`` (id, name or ``name:version``) with its lineage: base model,
        merged-from adapter, training dataset, eval dataset and training job, a base
        model's adapters, the models merged from it, its serving totals (requests, tokens,
        USD, kWh, kg CO2eq; every caller's for its owner or an admin, else the caller's
        own) and the same as ``nodes``/``edges`` for drawing. Related rows the caller may
        not read are None or left out.

        Raises NotFoundError, PermissionDeniedError (another user's private model)."""
        return ModelLineage.model_validate(
            self._client.request("GET", f"/v1/models/{ref}/lineage").json())

    def import_base(self, source: str | None = None, name: str | None = None) -> Model:
        """Admin: import a base model from a path on the cluster (``.gguf`` or HF folder);
        no source imports the bundled SmolLM2-135M-Instruct. Idempotent by name. The
        conversion can take a minute, so this call waits up to 10 minutes."""
        body = {k: v for k, v in {"source": source, "name": name}.items() if v is not None}
        return Model.model_validate(self._client.request(
            "POST", "/v1/models/import", json=body, timeout=600).json())

    def merge(self, model_id: str, *, name: str | None = None) -> Model:
        """Merge the LoRA adapter ``model_id`` (id, name or ``name:version``) into its base
        model's weights and register the result as a new base model of the caller
        (``merged_from_id`` names the adapter); the caller's earlier merge of it is
        returned instead (idempotent). ``name`` defaults to ``<adapter name>-merged``.
        The merge loads the model on the cluster, so this call waits up to 10 minutes.

        Raises ValidationFailedError (422, ``field="model_id"``) for a base model,
        NotFoundError, PermissionDeniedError (another user's private adapter)."""
        body = {"name": name} if name is not None else {}
        return Model.model_validate(self._client.request(
            "POST", f"/v1/models/{model_id}/merge", json=body, timeout=600).json())

    def publish(self, ref: str, published: bool = True) -> Model:
        return Model.model_validate(self._client.request(
            "POST", f"/v1/models/{ref}/publish",
            params={"published": str(published).lower()}).json())

    def delete(self, ref: str) -> None:
        self._client.request("DELETE", f"/v1/models/{ref}")

    def evaluate(self, ref: str, dataset_id: str, *, n: int = 50, max_tokens: int = 64,
                 wait: bool = False, timeout_s: float = 3600.0,
                 poll_s: float = 2.0) -> Evaluation:
        """Evaluate adapter ``ref`` (id, name or ``name:version``) against its base model
        on dataset ``dataset_id`` (chats: the last assistant turn is the reference;
        preference pairs: the chosen reply): both answer its first ``n`` prompts (greedy,
        at most ``max_tokens`` tokens) in a Ray job, scored with ROUGE-L, BLEU and exact
        match. Returns the evaluation as created (``pending``), or with ``wait`` once it
        ended (``completed`` with ``scores``, or ``failed`` with ``error_message``).

        Raises ValidationFailedError (422: a base model, ``field="model_id"``; a dataset
        without prompts and references, ``field="dataset_id"``), NotFoundError,
        PermissionDeniedError, UnavailableError (the job API refused the submission),
        TimeoutError (``wait``: not ended within ``timeout_s`` seconds)."""
        body = {"dataset_id": dataset_id, "n": n, "max_tokens": max_tokens}
        evaluation = Evaluation.model_validate(self._client.request(
            "POST", f"/v1/models/{ref}/evaluations", json=body).json())
        return self.wait_evaluation(evaluation.id, timeout_s, poll_s) if wait else evaluation

    def evaluation(self, evaluation_id: str) -> Evaluation:
        """One evaluation: status, scores (base and adapter per metric), kept examples."""
        return Evaluation.model_validate(
            self._client.request("GET", f"/v1/evaluations/{evaluation_id}").json())

    def evaluations(self, ref: str, *, page_size: int = 50,
                    cursor: str | None = None) -> Page[Evaluation]:
        """One page of adapter ``ref``'s evaluations, newest first."""
        return self._page(Evaluation, f"/v1/models/{ref}/evaluations",
                          {"page_size": page_size, "cursor": cursor})

    def wait_evaluation(self, evaluation_id: str, timeout_s: float = 3600.0,
                        poll_s: float = 2.0) -> Evaluation:
        """Poll an evaluation every ``poll_s`` seconds until it is completed or failed.

        Raises TimeoutError after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            evaluation = self.evaluation(evaluation_id)
            if evaluation.status in TERMINAL_EVALUATION_STATUSES:
                return evaluation
            if time.monotonic() > deadline:
                raise TimeoutError(f"evaluation {evaluation_id} still {evaluation.status} "
                                   f"after {timeout_s:g} s")
            time.sleep(poll_s)
