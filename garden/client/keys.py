"""``client.keys``: API keys (admins create them; everyone lists and deletes their own)."""

from __future__ import annotations

from catalog.schemas import ApiKey, Page, Role
from garden.client.base import Namespace


class Keys(Namespace):
    def create(self, user_id: str, name: str, role: Role | str = Role.user) -> tuple[ApiKey, str]:
        """Admin only. Returns ``(record, secret)``; the secret is never shown again."""
        data = self._client.request("POST", "/v1/keys", json={
            "user_id": user_id, "name": name, "role": str(role)}).json()
        return ApiKey.model_validate(data["key"]), data["secret"]

    def list(self, *, page_size: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        return self._page(ApiKey, "/v1/keys", {"page_size": page_size, "cursor": cursor})

    def delete(self, key_id: str) -> None:
        self._client.request("DELETE", f"/v1/keys/{key_id}")
