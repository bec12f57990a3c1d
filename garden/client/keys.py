"""``client.keys``: API keys (admins create them and set their limits; everyone lists,
reads and deletes their own)."""

from __future__ import annotations

from typing import Any

from catalog.schemas import ApiKey, Page, Role
from garden.client.base import Namespace


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this limit as it is" in :meth:`Keys.set_limits` (None clears a limit).
UNSET: Any = _Unset()


class Keys(Namespace):
    def create(
        self, user_id: str, name: str, role: Role | str = Role.user, *,
        rpm_limit: int | None = None, tpm_limit: int | None = None,
        token_budget: int | None = None,
    ) -> tuple[ApiKey, str]:
        """Admin only. Returns ``(record, secret)``; the secret is never shown again.

        Limits (each >= 1, None: no limit): ``rpm_limit`` requests per minute,
        ``tpm_limit`` tokens per minute, ``token_budget`` tokens in the key's lifetime.
        Over a limit the OpenAI routes answer 429 with ``Retry-After``.
        """
        body: dict[str, Any] = {"user_id": user_id, "name": name, "role": str(role),
                                "rpm_limit": rpm_limit, "tpm_limit": tpm_limit,
                                "token_budget": token_budget}
        data = self._client.request("POST", "/v1/keys", json={
            k: v for k, v in body.items() if v is not None}).json()
        return ApiKey.model_validate(data["key"]), data["secret"]

    def get(self, key_id: str) -> ApiKey:
        """One key (the caller's own, or any as an admin), with ``tokens_used``."""
        return ApiKey.model_validate(self._client.request("GET", f"/v1/keys/{key_id}").json())

    def set_limits(
        self, key_id: str, *, rpm_limit: int | None = UNSET, tpm_limit: int | None = UNSET,
        token_budget: int | None = UNSET,
    ) -> ApiKey:
        """Admin only: set a key's limits (None clears one; a limit not passed keeps its
        value). Returns the key; the ingresses apply it within their key cache TTL."""
        body = {k: v for k, v in {"rpm_limit": rpm_limit, "tpm_limit": tpm_limit,
                                  "token_budget": token_budget}.items() if v is not UNSET}
        return ApiKey.model_validate(
            self._client.request("PATCH", f"/v1/keys/{key_id}", json=body).json())

    def list(self, *, page_size: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        return self._page(ApiKey, "/v1/keys", {"page_size": page_size, "cursor": cursor})

    def delete(self, key_id: str) -> None:
        self._client.request("DELETE", f"/v1/keys/{key_id}")
