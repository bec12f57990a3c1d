"""API keys: who may call the gateway, and as what role."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import Field

from catalog.schemas.common import CreatedAt, Row, UpdatedAt

#: Lifetime of a job token unless its minter chooses one, s (4 h: time for a job to be
#: submitted and its driver to start, with room for a queue).
JOB_TOKEN_TTL_S = 4 * 3600
#: Shortest and longest lifetime a job token may be given, s (1 min, 7 days).
MIN_JOB_TOKEN_TTL_S, MAX_JOB_TOKEN_TTL_S = 60, 7 * 24 * 3600


class Role(enum.StrEnum):
    """``admin`` sees and manages every user's rows; ``user`` only their own."""

    admin = "admin"
    user = "user"


class KeyScope(enum.StrEnum):
    """``full``: a key that may call every route its role allows. ``job``: a job token
    (secret ``gjt_...``), made for one ``ray job submit``: its driver registers one training
    job or batch with it (which binds it to that job), and over HTTP it may only read that
    job; it expires, and it is revoked when the job ends."""

    full = "full"
    job = "job"


# No create model: keys are made by CatalogStore.create_api_key(user_id, name, role, ...),
# which returns the secret once, beside this record; limits change with api_keys.update.
class ApiKey(Row):
    """An API key's record. The secret is never part of it: the catalog keeps only the
    secret's SHA-256 (``api_keys.key_hash``), which this model does not read."""

    user_id: str = Field(description="The user the key authenticates as.")
    name: str = Field(description="What the key is for.")
    prefix: str = Field(description="First characters of the key, to recognise it.")
    role: Role = Field(description="What the key may do.")
    revoked: bool = Field(description="A revoked key authenticates nothing.")
    rpm_limit: int | None = Field(
        ge=1, description="Most requests per minute the key may make; null: no limit.")
    tpm_limit: int | None = Field(
        ge=1, description="Most tokens (prompt + completion) per minute; null: no limit.")
    token_budget: int | None = Field(
        ge=1, description="Most tokens (prompt + completion) the key may use in its "
        "lifetime; null: no limit.")
    tokens_used: int = Field(
        0, ge=0, description="Tokens (prompt + completion) the key has used, from the "
        "catalog's usage rollups.")
    scope: KeyScope = Field(KeyScope.full, description="What the key may be used for.")
    job_id: str | None = Field(
        None, description="A job token's training job or batch (id); null for a full key "
        "and for a job token that has registered none yet.")
    expires_at: datetime | None = Field(
        None, description="When a job token stops authenticating (UTC); null: never.")
    created_at: CreatedAt
    updated_at: UpdatedAt
