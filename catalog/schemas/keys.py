"""API keys: who may call the gateway, and as what role."""

from __future__ import annotations

import enum

from pydantic import Field

from catalog.schemas.common import CreatedAt, Row, UpdatedAt


class Role(enum.StrEnum):
    """``admin`` sees and manages every user's rows; ``user`` only their own."""

    admin = "admin"
    user = "user"


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
    created_at: CreatedAt
    updated_at: UpdatedAt
