"""Text longer than its column is refused before the database sees it, the same way on
SQLite and PostgreSQL.

PostgreSQL refuses a value longer than its ``VARCHAR(n)`` column (a ``DataError`` that
names no column); SQLite stores it whole (it does not enforce ``VARCHAR`` lengths).
:func:`check_lengths` runs before every flush of the store's sessions and makes both
refuse it alike, naming the field. Request models carry the same lengths as
``max_length`` (:mod:`catalog.schemas.common`), so a gateway request is refused before it
reaches the store; this check covers every other writer (jobs, the CLI's imports, a
store method that takes plain strings). Multi-row ``INSERT`` statements
(``record_usage``) bypass the ORM and keep PostgreSQL's own check.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import String, inspect
from sqlalchemy.orm import Mapper, Session

from catalog.errors import InvalidArgument


@cache
def string_lengths(mapper: Mapper[Any]) -> tuple[tuple[str, int], ...]:
    """``(attribute, n)`` for each ``String(n)`` column of a mapped class (its ``mapper``;
    ``Text`` and unbounded ``String`` columns have no length and are left out)."""
    return tuple(
        (attr.key, attr.columns[0].type.length)
        for attr in mapper.column_attrs
        if isinstance(attr.columns[0].type, String) and attr.columns[0].type.length)


def check_lengths(session: Session, _context: Any = None, _instances: Any = None) -> None:
    """Refuse the flush when a new or changed row holds text longer than its column.

    A ``before_flush`` listener (``event.listen(sessionmaker, "before_flush",
    check_lengths)``). Only values being written are checked (an attribute's history,
    which emits no SQL), so a row stored before this check, with a longer value, can
    still have its other columns changed.

    Raises:
        InvalidArgument: (``field`` the attribute) the first value over its column's
            length, in characters; the session's transaction is rolled back by its owner,
            so nothing is written.
    """
    for row in (*session.new, *session.dirty):
        state = inspect(row)
        for key, length in string_lengths(state.mapper):
            # a new row writes every value it holds; a changed one, its new values
            written = (state.dict.get(key),) if state.pending else \
                state.attrs[key].history.added
            for value in written:
                if isinstance(value, str) and len(value) > length:
                    raise InvalidArgument(
                        f"{key}: at most {length} characters, got {len(value)}", field=key)
