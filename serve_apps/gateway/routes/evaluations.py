"""Evaluations: ``POST /v1/models/{id}/evaluations`` runs one as a Ray job (``python -m
eval_jobs.run``), ``GET /v1/models/{id}/evaluations`` lists an adapter's, and
``GET /v1/evaluations/{id}`` reads one (status, scores, kept examples).

An evaluation's answers are a batch's (its ``batch_id``): they are billed to the
caller, and the batch's request counts show how far the answers are.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter

from catalog import schemas as s
from catalog.errors import InvalidArgument, NotFound, Unavailable
from catalog.port import AsyncCatalogPort
from serve_apps.auth import Principal, check_owner, owner_filter
from serve_apps.gateway.deps import Caller, Cat, Paging, Settings, Worker
from serve_apps.gateway.routes.datasets import owned_dataset
from serve_apps.gateway.routes.models import visible_model

router = APIRouter(tags=["evaluations"])
log = logging.getLogger("serve_apps.gateway")


async def owned_evaluation(cat: AsyncCatalogPort, caller: Principal,
                           evaluation_id: str) -> s.Evaluation:
    """The evaluation, if the caller may see it. Raises NotFound (404), 403."""
    evaluation = await cat.evaluations.get(evaluation_id)
    check_owner(caller, evaluation.user_id)
    return evaluation


@router.post("/v1/models/{model_id}/evaluations", status_code=202,
             response_model=s.Evaluation)
async def create_evaluation(
    model_id: str, body: s.EvaluationCreate, caller: Caller, cat: Cat, config: Settings,
    work: Worker,
) -> Any:
    """Evaluate an adapter the caller may read against its base model on one of the
    caller's datasets: both answer its first ``n`` prompts (greedy, at most
    ``max_tokens``) and are scored against the references (ROUGE-L, BLEU, exact match).
    202 with the evaluation, submitted as a Ray job; follow it with
    ``GET /v1/evaluations/{id}``.

    422 for a base model or a dataset without prompts and references (``field`` names
    it); 503 (``details.evaluation_id``) when the job API refuses the submission (the
    evaluation is marked failed).
    """
    model = await visible_model(cat, caller, model_id)
    try:
        await owned_dataset(cat, caller, body.dataset_id)
    except NotFound as exc:
        raise InvalidArgument(f"dataset_id: {exc.message}", field="dataset_id") from exc
    request = body.model_copy(update={"user_id": caller.user_id})
    evaluation = await cat.create_evaluation(model.id, request)
    details = {"evaluation_id": evaluation.id}
    try:
        await asyncio.wait_for(
            work.submit_evaluation(evaluation.id, timeout_s=config.submit_timeout_s),
            timeout=config.submit_timeout_s + config.request_timeout_s)
    except Unavailable as exc:
        raise Unavailable(f"evaluation {evaluation.id} could not be submitted: "
                          f"{exc.message}", details=details) from exc
    except (RuntimeError, OSError) as exc:  # OSError: network errors and the timeout
        log.warning("submitting evaluation %s failed: %s", evaluation.id, exc)
        await cat.fail_evaluation(evaluation.id, f"submission failed: {exc}"[:4000])
        raise Unavailable(f"evaluation {evaluation.id} could not be submitted: {exc}",
                          details=details) from exc
    return await cat.evaluations.get(evaluation.id)


@router.get("/v1/models/{model_id}/evaluations", response_model=s.Page[s.Evaluation])
async def list_evaluations(model_id: str, caller: Caller, cat: Cat, paging: Paging) -> Any:
    """The evaluations of a model the caller may read, newest first: the caller's own
    (an admin's: everyone's)."""
    model = await visible_model(cat, caller, model_id)
    return await cat.evaluations.list(page_size=paging.page_size, cursor=paging.cursor,
                                      model_id=model.id, user_id=owner_filter(caller))


@router.get("/v1/evaluations/{evaluation_id}", response_model=s.Evaluation)
async def get_evaluation(evaluation_id: str, caller: Caller, cat: Cat) -> Any:
    """One evaluation: its status, scores and kept examples."""
    return await owned_evaluation(cat, caller, evaluation_id)
