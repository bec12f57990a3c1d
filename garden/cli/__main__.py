"""``python -m garden.cli``: the ``garden`` command."""

from garden.cli import app

app()
