"""Model Garden's public face: the Python client (:class:`Client`) and the ``garden`` CLI."""

from garden.client import Client
from garden.errors import GardenError

__all__ = ["Client", "GardenError"]
