"""One noun per resource in every layer: the schema module, the store module, the gateway's
route module, the client namespace and the CLI module of a resource carry the same name
(as Airflow's ``models/pool.py``, ``datamodels/pools.py``, ``routes/public/pools.py``,
``cli/commands/pool_command.py``).

Every module of a layer is one of :data:`NOUNS` or one of that layer's
:data:`INFRASTRUCTURE` modules, and every noun has a module in every layer but the cells
of :data:`ABSENT`, each with where the resource lives instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The resources, one name each in every layer.
NOUNS = frozenset({
    "models", "datasets", "training", "batches", "evaluations", "media", "styles", "library",
    "usage", "carbon", "keys", "system",
})

#: The layers, top to bottom of the request path, and their modules that are no resource.
INFRASTRUCTURE: dict[str, dict[str, str]] = {
    "catalog/schemas": {
        "__init__": "re-exports every schema",
        "common": "the Schema and Row bases, pages, the error shape, shared field types",
    },
    "catalog/store": {
        "__init__": "CatalogStore, composed of the resource mixins",
        "base": "the engine, sessions and their error mapping",
        "repo": "the generic repository",
        "paging": "cursors and pages",
        "events": "job events",
        "marks": "the idempotent mark of operations",
    },
    "serve_apps/gateway/routes": {
        "__init__": "the package",
    },
    "garden/client": {
        "__init__": "the Client, its namespaces as properties, health/system/whoami",
        "base": "the Namespace base",
        "transport": "HTTP errors and retries",
    },
    "garden/cli": {
        "__init__": "builds the app and adds one Typer per module",
        "__main__": "python -m garden.cli",
        "output": "tables, progress, errors, the client from the context",
        "options": "the port defaults and the options several groups share",
        "cluster": "the local cluster's commands: up, demo, down, status",
        "deploy": "manifests for other platforms: garden deploy kuberay",
    },
}

#: Nouns without a module in a layer, and where the resource lives instead.
ABSENT: dict[tuple[str, str], str] = {
    ("carbon", "catalog/schemas"): "catalog/schemas/usage.py (carbon records beside usage)",
    ("system", "catalog/schemas"): "none: /v1/system and /v1/whoami answer plain objects",
    ("system", "catalog/store"): "none: the system routes read no catalog rows",
    ("media", "serve_apps/gateway/routes"): "serve_apps/media (the media app's own routes)",
    ("system", "garden/client"): "garden/client/__init__.py (Client.health, system, whoami)",
    ("system", "garden/cli"): "garden/cli/cluster.py (garden status)",
    ("evaluations", "garden/client"): "garden/client/models.py (client.models.evaluate, "
                                      "evaluation, evaluations: an evaluation is a model's)",
    ("evaluations", "garden/cli"): "garden/cli/models.py (garden models evaluate)",
}


def modules(layer: str) -> set[str]:
    """The names of ``layer``'s modules and subpackages."""
    folder = ROOT / layer
    return ({path.stem for path in folder.glob("*.py")}
            | {path.name for path in folder.iterdir() if (path / "__init__.py").is_file()})


@pytest.mark.parametrize("layer", INFRASTRUCTURE)
def test_every_module_is_a_resource_or_listed_infrastructure(layer):
    stray = modules(layer) - NOUNS - INFRASTRUCTURE[layer].keys()
    assert not stray, (f"{layer}: {sorted(stray)} name no resource; use one of "
                       f"{sorted(NOUNS)} or list it in INFRASTRUCTURE with what it holds")
    missing = INFRASTRUCTURE[layer].keys() - modules(layer)
    assert not missing, f"{layer}: INFRASTRUCTURE lists {sorted(missing)}, which are gone"


@pytest.mark.parametrize("layer", INFRASTRUCTURE)
def test_every_resource_has_its_module_in_every_layer(layer):
    present = modules(layer) & NOUNS
    expected = {noun for noun in NOUNS if (noun, layer) not in ABSENT}
    assert present >= expected, (
        f"{layer} lacks {sorted(expected - present)}: name the module after the resource, "
        "or add the cell to ABSENT with where the resource lives")
    assert not present - expected, (
        f"{layer} now has {sorted(present - expected)}: take the cells out of ABSENT")


def test_absent_cells_name_known_nouns_and_layers():
    for noun, layer in ABSENT:
        assert noun in NOUNS and layer in INFRASTRUCTURE, (noun, layer)
