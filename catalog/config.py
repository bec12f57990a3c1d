"""Where the catalog keeps its data. Read from the environment each call, never at import.

- ``GARDEN_HOME``: storage root (default ``~/.garden``): the SQLite file, datasets,
  models, checkpoints and media outputs live under it.
- ``GARDEN_DATABASE_URL``: any SQLAlchemy URL; default ``sqlite:///$GARDEN_HOME/catalog.db``.
  PostgreSQL: ``postgresql+psycopg://user@host:5432/dbname``.
"""

from __future__ import annotations

import os
from pathlib import Path


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
