"""Where the catalog keeps its data. Read from the environment each call, never at import.

- ``GARDEN_HOME``: storage root (default ``~/.garden``): the SQLite file, datasets,
  models, checkpoints and media outputs live under it.
- ``GARDEN_ADMIN_KEY``: the bootstrap admin API key (see :func:`is_admin_key`).
- ``GARDEN_DATABASE_URL``: any SQLAlchemy URL; default ``sqlite:///$GARDEN_HOME/catalog.db``.
  PostgreSQL: ``postgresql+psycopg://user@host:5432/dbname``.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

#: The environment variable holding the bootstrap admin API key (``garden up --admin-key``),
#: read by the gateway and by training job drivers.
ADMIN_KEY_ENV = "GARDEN_ADMIN_KEY"
#: The user id the bootstrap admin key acts as.
ADMIN_USER = "admin"


def is_admin_key(secret: str) -> bool:
    """Whether ``secret`` is the bootstrap admin key of this process's environment
    (compared in constant time; False when none is set)."""
    admin_key = os.environ.get(ADMIN_KEY_ENV)
    if not admin_key:
        return False
    return hmac.compare_digest(secret.encode(), admin_key.encode())


def garden_home() -> Path:
    """The storage root, created if missing."""
    home = Path(os.environ.get("GARDEN_HOME") or Path.home() / ".garden").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def database_url() -> str:
    """The catalog's SQLAlchemy URL (``GARDEN_DATABASE_URL`` or the embedded SQLite file)."""
    url = os.environ.get("GARDEN_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{garden_home() / 'catalog.db'}"
