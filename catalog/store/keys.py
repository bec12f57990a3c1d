"""The keys aggregate: the ``api_keys`` repository, creating API keys and job tokens,
authenticating a secret, and the job-token rules that job and batch creation apply
(:func:`lock_job_token`, :func:`revoke_job_tokens`)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.config import ADMIN_USER
from catalog.errors import InvalidArgument, InvalidTransition, NotFound
from catalog.lifecycle import (
    BATCH_TRANSITIONS,
    EVALUATION_TRANSITIONS,
    JOB_TRANSITIONS,
    is_terminal,
)
from catalog.store.base import StoreBase
from catalog.store.marks import idempotent
from catalog.store.repo import RepoField, validated

#: What a job token may be bound to, with each one's lifecycle (a token is refused for a
#: row that has ended).
BINDABLE: dict[type, dict[str, frozenset[str]]] = {
    t.TrainingJobRow: JOB_TRANSITIONS, t.BatchRow: BATCH_TRANSITIONS,
    t.EvaluationRow: EVALUATION_TRANSITIONS,
}


class KeysMixin(StoreBase):
    """API keys and the job tokens that register one job each."""

    api_keys = RepoField(t.ApiKeyRow, s.ApiKey, filters=("role", "scope", "job_id"),
                         updatable=("rpm_limit", "tpm_limit", "token_budget"))

    def create_api_key(
        self, user_id: str, name: str, role: s.Role | str = s.Role.user, *,
        secret: str | None = None, rpm_limit: int | None = None, tpm_limit: int | None = None,
        token_budget: int | None = None,
    ) -> tuple[s.ApiKey, str]:
        """Create a key; returns ``(record, secret)``. Only the SHA-256 of the secret is
        stored (keys are 256-bit random, so a fast hash is enough: no dictionary to
        attack). Pass ``secret`` to register a known key (the bootstrap admin key).

        ``rpm_limit`` (requests per minute), ``tpm_limit`` (tokens per minute) and
        ``token_budget`` (lifetime tokens) are the key's limits, null for none; the
        gateway enforces them. Change them with ``api_keys.update(key_id, rpm_limit=...)``.

        Raises:
            InvalidArgument: a limit below 1.
        """
        secret = secret or "gk_" + secrets.token_urlsafe(32)
        with self.session() as session:
            row = t.ApiKeyRow(
                id=t.new_id("key"), user_id=user_id, name=name, prefix=secret[:8],
                key_hash=hash_key(secret), role=s.Role(role), rpm_limit=rpm_limit,
                tpm_limit=tpm_limit, token_budget=token_budget,
            )
            session.add(row)
            session.flush()
            return validated(s.ApiKey, row), secret

    def create_job_token(
        self, user_id: str | None = None, *, job_id: str | None = None,
        ttl_s: int = s.JOB_TOKEN_TTL_S,
    ) -> tuple[s.ApiKey, str]:
        """Mint a job token (scope ``job``, secret ``gjt_`` + 256 random bits, stored as
        its SHA-256 like every key); returns ``(record, secret)``.

        A job token registers one training job or batch (``create_training_job`` /
        ``create_batch`` with ``job_token_id``, which binds it to that job); minted with
        ``job_id`` it is bound from the start (the gateway's own submissions). It stops
        authenticating ``ttl_s`` seconds from now, and is revoked when its job reaches a
        terminal status (:meth:`transition_job`, :meth:`transition_batch`).

        Args:
            user_id: whose jobs it files; with ``job_id``, default and must be the job's
                owner (:data:`catalog.config.ADMIN_USER` for a job of no one).
            job_id: a training job, batch or evaluation that has not ended, to bind it
                to.
            ttl_s: lifetime, s, within :data:`catalog.schemas.MIN_JOB_TOKEN_TTL_S` ..
                :data:`~catalog.schemas.MAX_JOB_TOKEN_TTL_S`.

        Raises:
            InvalidArgument: ``ttl_s`` out of bounds (``field="ttl_s"``), no ``user_id``
                or not the job's owner (``field="user_id"``). NotFound: no such job.
            InvalidTransition: the job has ended. Nothing is written.
        """
        if not s.MIN_JOB_TOKEN_TTL_S <= ttl_s <= s.MAX_JOB_TOKEN_TTL_S:
            raise InvalidArgument(
                f"ttl_s: a job token lives {s.MIN_JOB_TOKEN_TTL_S} to "
                f"{s.MAX_JOB_TOKEN_TTL_S} s, not {ttl_s}", field="ttl_s")
        secret = "gjt_" + secrets.token_urlsafe(32)
        with self.session() as session:
            if job_id is not None:
                # locked: a job ending meanwhile revokes the token after it is written
                job = next((row for table in BINDABLE if (row := session.get(
                    table, job_id, with_for_update=True)) is not None), None)
                if job is None:
                    raise NotFound(f"no training job, batch or evaluation {job_id!r}",
                                   field="job_id")
                owner = job.user_id or ADMIN_USER
                if user_id is not None and user_id != owner:
                    raise InvalidArgument(f"user_id: {job_id} belongs to {owner}, not "
                                          f"{user_id}", field="user_id")
                user_id = owner
                if is_terminal(BINDABLE[type(job)], job.status):
                    raise InvalidTransition(f"{job_id} has ended ({job.status})",
                                            field="status")
            if not user_id:
                raise InvalidArgument("user_id: a job token files jobs for a user",
                                      field="user_id")
            row = t.ApiKeyRow(
                id=t.new_id("key"), user_id=user_id, name="job token", prefix=secret[:8],
                key_hash=hash_key(secret), role=s.Role.user, scope=s.KeyScope.job,
                job_id=job_id, expires_at=t.utcnow() + timedelta(seconds=ttl_s))
            session.add(row)
            session.flush()
            return validated(s.ApiKey, row), secret

    @idempotent
    def authenticate(self, secret: str) -> s.ApiKey | None:
        """The live key whose hash matches ``secret``, or None (unknown, revoked, or a job
        token past its ``expires_at``). Its ``tokens_used`` is summed from the key's usage
        rollups in the same query (indexed by key)."""
        with self.session() as session:
            row = session.scalars(
                select(t.ApiKeyRow).where(t.ApiKeyRow.key_hash == hash_key(secret))
            ).first()
            if row is None or row.revoked or _expired(row):
                return None
            return s.ApiKey.model_validate(row)


def hash_key(secret: str) -> str:
    """Hex SHA-256 of an API key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _expired(key: t.ApiKeyRow) -> bool:
    return key.expires_at is not None and key.expires_at <= t.utcnow()


def lock_job_token(session: Session, token_id: str) -> t.ApiKeyRow:
    """The job token ``token_id``, locked, if it may register a job: a live job token that
    registered none yet. Raises InvalidArgument (``field="job_token_id"``) otherwise."""
    token = session.scalars(
        select(t.ApiKeyRow).where(t.ApiKeyRow.id == token_id).with_for_update()).first()
    if token is None or token.scope != s.KeyScope.job:
        problem = "is not a job token"
    elif token.revoked or _expired(token):
        problem = "has expired or was revoked"
    elif token.job_id is not None:
        problem = (f"already registered {token.job_id}: a job token registers one job; "
                   "mint another (`garden jobs token`)")
    else:
        return token
    raise InvalidArgument(f"job token {token_id} {problem}", field="job_token_id")


def revoke_job_tokens(session: Session, job_id: str) -> None:
    """Revoke the job tokens bound to the training job or batch ``job_id`` (it ended)."""
    session.execute(update(t.ApiKeyRow).where(
        t.ApiKeyRow.job_id == job_id, t.ApiKeyRow.scope == s.KeyScope.job,
        t.ApiKeyRow.revoked.is_(False)).values(revoked=True))
