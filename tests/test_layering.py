"""DESIGN.md's layering: each folder imports downward only (README, "Architecture").

Every module of the product packages is parsed with :mod:`ast`; every ``import`` and
``from ... import`` counts, those inside functions and ``TYPE_CHECKING`` blocks
included. A failure names ``file:line`` of each import that breaks :data:`ALLOWED`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Top-level packages of this repository; imports of anything else are not checked.
PROJECT = ("catalog", "corpora", "ray_jobs", "train_jobs", "batch_jobs", "eval_jobs",
           "serve_apps", "cluster", "garden", "bench", "tests")
#: The packages whose modules are checked (``bench`` and ``tests`` may import anything).
CHECKED = ("catalog", "corpora", "ray_jobs", "train_jobs", "batch_jobs", "eval_jobs",
           "serve_apps", "cluster", "garden")

#: The pure contract modules of the catalog that ``garden`` may import.
CONTRACT = ("catalog.schemas", "catalog.errors", "catalog.retry", "catalog.lifecycle")
_CLIENT = ("garden.client", "garden.errors", *CONTRACT)

#: Importing module (the longest matching prefix applies) -> the project modules it may
#: import (each entry matches itself and its submodules).
ALLOWED: dict[str, tuple[str, ...]] = {
    "catalog": ("catalog",),
    "corpora": ("corpora", "catalog"),
    "ray_jobs": ("ray_jobs", "catalog"),
    # a training job with an eval set ends with an evaluation
    "train_jobs": ("train_jobs", "eval_jobs", "batch_jobs", "corpora", "ray_jobs", "catalog"),
    "batch_jobs": ("batch_jobs", "ray_jobs", "catalog"),
    # an evaluation's answers are a batch's
    "eval_jobs": ("eval_jobs", "batch_jobs", "corpora", "ray_jobs", "catalog"),
    "serve_apps": ("serve_apps", "catalog"),
    # the cluster deploys the Serve apps it is handed (garden builds the web console)
    "cluster": ("cluster", "serve_apps", "train_jobs", "batch_jobs", "eval_jobs", "ray_jobs",
                "corpora", "catalog"),
    # the garden package itself re-exports the client; its client speaks HTTP
    "garden": _CLIENT,
    "garden.client": _CLIENT,
    "garden.errors": _CLIENT,
    # the web console speaks to the gateway through the client only
    "garden.console": ("garden.console", *_CLIENT),
    # the CLI runs the demo (`garden demo`)
    "garden.cli": ("garden.cli", "garden.demo", "cluster", *_CLIENT),
    # the demo uploads the built-in corpus and hands the web console it builds to the
    # local cluster
    "garden.demo": ("garden.demo", "garden.console", "cluster", "corpora", *_CLIENT),
}


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _rule(importer: str) -> tuple[str, ...]:
    key = max((k for k in ALLOWED if _matches(importer, k)), key=len)
    return ALLOWED[key]


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_name(path: Path) -> str:
    """``serve_apps/gateway/app.py`` -> ``serve_apps.gateway.app`` (packages: their name)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, importer: str, *, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source``; ``from X import y`` counts as
    ``X.y`` when that is a module of this repository, else as ``X``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = importer.split(".")
                if not is_package:
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else base))
    return found


def violations(path: Path, source: str | None = None) -> list[str]:
    """``file:line: importer imports target`` for each import of ``path`` that breaks
    :data:`ALLOWED` (``source`` overrides the file's text)."""
    importer = module_name(path)
    text = path.read_text(encoding="utf-8") if source is None else source
    allowed = _rule(importer)
    out = []
    for line, target in imported_modules(text, importer, is_package=path.name == "__init__.py"):
        if target.split(".")[0] not in PROJECT:
            continue
        if not any(_matches(target, ok) for ok in allowed):
            out.append(f"{path.relative_to(ROOT)}:{line}: {importer} imports {target} "
                       f"(allowed: {', '.join(allowed)})")
    return out


def product_files() -> list[Path]:
    return sorted(p for pkg in CHECKED for p in (ROOT / pkg).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_every_import_follows_the_layering():
    files = product_files()
    assert len(files) > 50, files
    broken = [v for path in files for v in violations(path)]
    assert not broken, "imports that break DESIGN.md's layering:\n" + "\n".join(broken)


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    source = ("from catalog import errors\n"
              "def convert():\n"
              "    from train_jobs.base_models import import_base_model\n"
              "    from .. import deps\n"
              "    import cluster.work\n")
    found = violations(ROOT / "serve_apps" / "gateway" / "routes" / "example.py", source)
    assert [v.split(": ", 1)[0] for v in found] == [
        "serve_apps/gateway/routes/example.py:3", "serve_apps/gateway/routes/example.py:5"]
    assert "imports train_jobs.base_models" in found[0]


def test_the_rule_table_reads_as_design_md():
    assert _rule("garden.client.transport") == _CLIENT
    assert _rule("garden.demo") == ("garden.demo", "garden.console", "cluster", "corpora",
                                    *_CLIENT)
    assert not any(_matches("garden.console.serve", ok) for ok in _rule("cluster.deploy"))
    assert not any(_matches("catalog.actor", ok) for ok in _rule("garden.client.models"))
    assert not any(_matches("train_jobs.submit", ok) for ok in _rule("serve_apps.gateway"))
    assert not any(_matches("ray_jobs.submit", ok) for ok in _rule("serve_apps.gateway"))
    assert any(_matches("train_jobs.submit", ok) for ok in _rule("cluster.work"))
    assert not any(_matches("corpora.files", ok) for ok in _rule("serve_apps.gateway"))
    assert _rule("corpora.registration") == ("corpora", "catalog")
    assert not any(_matches("train_jobs", ok) for ok in _rule("ray_jobs.driver"))
    assert _rule("catalog.migrations.env") == ("catalog",)
