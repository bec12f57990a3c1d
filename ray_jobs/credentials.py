"""Who a job's driver acts for: the job token (or API key) in its Ray job's runtime env.

The runtime env of a Ray job is shown on the Ray dashboard, so what travels there is a job
token (:meth:`catalog.store.CatalogStore.create_job_token`, ``garden jobs token``), never a
user's API key:

- ``--config`` drivers (``train_jobs.run``, ``batch_jobs.run``) file their training job or
  batch for the user of :data:`JOB_TOKEN_ENV`; the catalog binds the token to that job in
  the same transaction, so one token registers one job. :data:`API_KEY_ENV` (a full key, or
  the bootstrap admin key) is still read when no token is set, for older submissions.
- ``--job-id``/``--batch-id`` drivers (the gateway's submissions) run only with the token
  their submission minted for that job (:func:`check_bound`).

Secrets are never logged; error messages name the variable, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from catalog import schemas as s
from catalog.config import is_admin_key
from catalog.errors import InvalidArgument
from catalog.port import CatalogPort

#: The runtime env variable that carries a job token (``gjt_...``).
JOB_TOKEN_ENV = "GARDEN_JOB_TOKEN"
#: The runtime env variable read when no job token is set: a full API key (shown on the
#: dashboard: kept for submissions written before job tokens).
API_KEY_ENV = "GARDEN_API_KEY"


def credential(env: Mapping[str, str] = os.environ) -> tuple[str, str | None]:
    """``(variable, secret)`` of the job's credential: :data:`JOB_TOKEN_ENV` when set, else
    :data:`API_KEY_ENV`; the secret is None when neither is set."""
    for name in (JOB_TOKEN_ENV, API_KEY_ENV):
        if env.get(name):
            return name, env[name]
    return API_KEY_ENV, None


def authenticate(cat: CatalogPort, secret: str, variable: str) -> s.ApiKey | None:
    """The catalog key (or job token) of ``secret``; None for the bootstrap admin key.

    Raises:
        InvalidArgument: an unknown, expired or revoked secret (``field`` the variable).
    """
    if is_admin_key(secret):
        return None
    key = cat.authenticate(secret)
    if key is None:
        raise InvalidArgument(
            f"{variable} is not a valid API key or job token (unknown, expired, or revoked "
            "because its job ended): mint one with `garden jobs token`", field=variable)
    return key


def filer(cat: CatalogPort, secret: str, variable: str) -> s.ApiKey | None:
    """Who a ``--config`` job is filed for: :func:`authenticate`, refusing at once a job
    token that already registered a job (before anything is stored; the catalog checks
    again when it binds the token, :func:`naming`).

    Raises:
        InvalidArgument: as :func:`authenticate`, or a used job token (``field`` the
            variable).
    """
    key = authenticate(cat, secret, variable)
    if key is not None and key.scope == s.KeyScope.job and key.job_id is not None:
        raise InvalidArgument(
            f"{variable}: this job token already registered {key.job_id}: a job token "
            "registers one job; mint another with `garden jobs token`", field=variable)
    return key


def job_token_id(key: s.ApiKey | None) -> str | None:
    """``key``'s id when it is a job token (to bind to the job it files), else None."""
    return key.id if key is not None and key.scope == s.KeyScope.job else None


@contextmanager
def naming(variable: str) -> Iterator[None]:
    """Re-raise the catalog's refusal of a job token (``field="job_token_id"``: expired,
    revoked, or already bound to a job) naming ``variable`` instead."""
    try:
        yield
    except InvalidArgument as exc:
        if exc.field != "job_token_id":
            raise
        raise InvalidArgument(f"{variable}: {exc.message}", field=variable) from exc


def check_bound(cat: CatalogPort, job_id: str, env: Mapping[str, str] = os.environ) -> None:
    """Refuse to run ``job_id`` (a training job, batch or evaluation id) unless
    :data:`JOB_TOKEN_ENV` is a live job token bound to it, as the gateway's submissions
    mint (``train_jobs.submit.submit_training_job``, ``batch_jobs.submit.submit_batch``,
    ``eval_jobs.submit.submit_evaluation``).

    Raises:
        InvalidArgument: no token, an unknown, expired or revoked one, or one bound to
            another job (``field`` :data:`JOB_TOKEN_ENV`).
    """
    secret = env.get(JOB_TOKEN_ENV)
    if not secret:
        raise InvalidArgument(
            f"{JOB_TOKEN_ENV} is not set: a job run by id carries the token its submission "
            "minted; to submit a job yourself, use --config with a token from "
            "`garden jobs token`", field=JOB_TOKEN_ENV)
    key = authenticate(cat, secret, JOB_TOKEN_ENV)
    if key is None or key.scope != s.KeyScope.job:
        problem = "is an API key, not a job token"
    elif key.job_id != job_id:
        problem = f"is bound to {key.job_id or 'no job yet'}, not to {job_id}"
    else:
        return
    raise InvalidArgument(f"{JOB_TOKEN_ENV} {problem}", field=JOB_TOKEN_ENV)
