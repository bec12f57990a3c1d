"""API-key authentication for every route but ``/health``.

Keys travel as ``Authorization: Bearer <key>``. A key is either the bootstrap
admin key from the environment variable ``GARDEN_ADMIN_KEY`` (compared in constant
time) or a key stored hashed in the catalog (:meth:`CatalogStore.authenticate`).
No key or an unknown key is 401; a known key acting on what it may not touch is
403 (:func:`require_admin`, :func:`check_owner`).

A job token (scope ``job``, minted by ``POST /v1/training/tokens`` for one ``ray job
submit``) is checked here too, for the gateway and the LLM app alike: it may only read
its own training job or batch (``GET`` of :data:`JOB_TOKEN_ROUTES` with that job's id);
any other route is 403, and past its ``expires_at`` or once its job ended (revoked) it is
401.

Catalog answers are cached per process for :data:`serve_apps.cache.CACHE_TTL_S`
seconds (:class:`serve_apps.cache.RefreshingCache`, keyed by the key's SHA-256): a
revoked key stops working, and a changed limit takes effect, within that time. While
the catalog actor restarts, keys seen before keep working (their entry is served
stale); a key never seen waits for the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request

from catalog import schemas as s
from catalog.config import ADMIN_USER, is_admin_key
from catalog.errors import PermissionDenied, Unauthenticated
from catalog.store import hash_key
from serve_apps.cache import RefreshingCache


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``user_id`` and ``role`` (``admin`` or ``user``), and the catalog
    key they called with (None for the bootstrap admin key), which carries its limits."""

    user_id: str
    role: str
    key: s.ApiKey | None = None

    @property
    def key_id(self) -> str | None:
        """The catalog id of the key used, or None for the bootstrap admin key."""
        return self.key.id if self.key is not None else None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from the bearer key.

    Raises:
        Unauthenticated: no key, or a key that is neither the admin key nor a live
            catalog key (401, with ``WWW-Authenticate: Bearer`` added by the handler).
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("missing API key: send Authorization: Bearer <key>")
    if is_admin_key(token):
        principal = Principal(ADMIN_USER, "admin")
    else:
        key = await _KEYS.get(hash_key(token), lambda: _authenticate(token))
        if key is None:
            raise Unauthenticated("invalid or revoked API key")
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise Unauthenticated(f"this job token expired at {key.expires_at.isoformat()}")
        check_job_scope(request, key)
        principal = Principal(key.user_id, str(key.role), key)
    request.state.principal = principal
    return principal


#: What a job token may call: ``GET`` of these route templates, and of the routes under
#: them (events, metrics, logs, stream, ...), when the named path parameter is its job.
JOB_TOKEN_ROUTES = {"/v1/training/jobs/{job_id}": "job_id", "/v1/batches/{batch_id}": "batch_id"}


def check_job_scope(request: Request, key: s.ApiKey) -> None:
    """Raise PermissionDenied (403) when ``key`` is a job token and the request is not a
    read of its own job (:data:`JOB_TOKEN_ROUTES`); a full key passes. The route is the one
    the app matched (``request.scope["route"]``), so a path is judged by its template."""
    if key.scope != s.KeyScope.job:
        return
    template = getattr(request.scope.get("route"), "path", "")
    if request.method in ("GET", "HEAD") and key.job_id is not None:
        for prefix, param in JOB_TOKEN_ROUTES.items():
            if (template == prefix or template.startswith(prefix + "/")) \
                    and request.path_params.get(param) == key.job_id:
                return
    raise PermissionDenied(
        f"a job token is limited to reading job {key.job_id}" if key.job_id else
        "a job token is limited to the job it registers, and has registered none yet")


#: This process's catalog answers per key hash (None: unknown or revoked).
_KEYS: RefreshingCache[str, s.ApiKey | None] = RefreshingCache()


async def _authenticate(token: str) -> s.ApiKey | None:
    from catalog.actor import AsyncCatalog

    return await AsyncCatalog().authenticate(token)


def require_admin(principal: Principal) -> None:
    """Raise PermissionDenied (403) unless ``principal`` is an admin."""
    if not principal.is_admin:
        raise PermissionDenied("admin API key required")


def check_owner(principal: Principal, owner_id: str | None) -> None:
    """Raise PermissionDenied (403) unless ``principal`` owns the row or is an admin."""
    if not principal.is_admin and owner_id != principal.user_id:
        raise PermissionDenied("this row belongs to another user")


def check_readable(principal: Principal, owner_id: str | None, public: bool) -> None:
    """Raise PermissionDenied (403) unless ``principal`` may read a row of ``owner_id``:
    a public (published) row anyone may; else as :func:`check_owner`."""
    if not public:
        check_owner(principal, owner_id)


def owner_filter(principal: Principal) -> str | None:
    """The ``user_id`` filter for list routes: None (all rows) for admins."""
    return None if principal.is_admin else principal.user_id
