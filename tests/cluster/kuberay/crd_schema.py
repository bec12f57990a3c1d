"""Validate the Kubernetes manifests the product generates, as plain dicts, in tests.

KubeRay kinds (``RayService``, ``RayJob``; ``apiVersion: ray.io/v1``) are checked against the
``openAPIV3Schema`` of KubeRay's CRDs. The schemas in ``crds/`` were built from KubeRay's tag
``v1.7.0`` (:data:`KUBERAY_VERSION`) by ``scripts/kuberay_crd_schemas.py``; rerun it with
another tag to move, and change :data:`KUBERAY_VERSION` to match.

The CRD schemas are Kubernetes structural schemas (OpenAPI 3.0 schema objects, whose keywords
mean what JSON Schema draft 4 says: Draft4Validator), with these Kubernetes extensions:

* ``x-kubernetes-int-or-string: true``: an integer or a string (``cpu: 1`` and
  ``cpu: "500m"``), said by one check instead of the ``anyOf`` the schema carries with it.
* Unknown fields: the API server drops (prunes) fields its schema does not name instead of
  rejecting them, so a typo (``serveConfigv2``) would be lost without a word. Here each is an
  error: an object whose schema has ``properties``, no ``additionalProperties`` and no
  ``x-kubernetes-preserve-unknown-fields: true`` takes no other fields.
* ``nullable: true`` admits ``null``; elsewhere ``null`` is an error (the API server would
  prune it, which in a generated manifest is a bug all the same).
* ``x-kubernetes-list-type``: ``set`` items are unique; ``map`` items are unique by their
  ``x-kubernetes-list-map-keys`` (a missing key counts as its default), as the API server
  checks.

Not checked: the CEL rules of ``x-kubernetes-validations``, ``format`` (int32 ranges,
date-time), and KubeRay's admission webhook. ``metadata`` is only required to be an object
with a string ``name``.

Core kinds (Secret, ConfigMap, ...) go through the ``kubernetes-validate`` package, which
ships the Kubernetes API's own schemas: :func:`validate_core`.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, ValidationError, validators

#: The KubeRay release whose CRD schemas ``crds/`` holds.
KUBERAY_VERSION = "v1.7.0"
#: The newest Kubernetes version whose schemas kubernetes-validate 1.37.0 ships.
KUBERNETES_VERSION = "1.37"
API_VERSION = "ray.io/v1"
#: KubeRay kind -> the CRD's plural name (the schema file's stem).
PLURALS = {"RayService": "rayservices", "RayJob": "rayjobs"}
CRD_DIR = Path(__file__).resolve().parent / "crds"

_DRAFT4 = Draft4Validator.VALIDATORS
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _properties(validator, properties, instance, schema) -> Iterator[ValidationError]:
    yield from _DRAFT4["properties"](validator, properties, instance, schema)
    if (
        not validator.is_type(instance, "object")
        or "additionalProperties" in schema
        or schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        return
    for key in instance:
        if key not in properties:
            yield ValidationError(
                "unknown field (not in the schema; the API server would drop it)", path=[key]
            )


def _required(validator, required, instance, schema) -> Iterator[ValidationError]:
    # One error at the missing field's own path, instead of at its parent's.
    if validator.is_type(instance, "object"):
        for name in required:
            if name not in instance:
                yield ValidationError("required field is missing", path=[name])


def _type(validator, types, instance, schema) -> Iterator[ValidationError]:
    if instance is None and schema.get("nullable"):
        return
    yield from _DRAFT4["type"](validator, types, instance, schema)


def _any_of(validator, any_of, instance, schema) -> Iterator[ValidationError]:
    if schema.get("x-kubernetes-int-or-string") and any_of == _INT_OR_STRING_ANY_OF:
        return  # _int_or_string says it
    yield from _DRAFT4["anyOf"](validator, any_of, instance, schema)


def _int_or_string(validator, value, instance, schema) -> Iterator[ValidationError]:
    if value and not any(validator.is_type(instance, t) for t in ("integer", "string")):
        yield ValidationError(f"{instance!r} is not an integer or a string (int-or-string)")


def _list_type(validator, list_type, instance, schema) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "array") or list_type not in ("set", "map"):
        return
    if list_type == "set":
        keys = [json.dumps(item, sort_keys=True) for item in instance]
        what = "value"
    else:
        names = schema.get("x-kubernetes-list-map-keys", [])
        props = schema.get("items", {}).get("properties", {})
        keys = [
            json.dumps({n: item.get(n, props.get(n, {}).get("default")) for n in names})
            if isinstance(item, dict) else None
            for item in instance
        ]
        what = f"key ({', '.join(names)})"
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            yield ValidationError(
                f"duplicate {what} {key} in a list-type {list_type} (first at [{first[key]}])",
                path=[i],
            )
        else:
            first[key] = i


#: Draft 4 with Kubernetes' structural-schema rules (the module's docstring lists them).
StructuralValidator = validators.extend(
    Draft4Validator,
    {
        "properties": _properties,
        "required": _required,
        "type": _type,
        "anyOf": _any_of,
        "x-kubernetes-int-or-string": _int_or_string,
        "x-kubernetes-list-type": _list_type,
    },
)


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``kind``'s CRD (v1) in KubeRay :data:`KUBERAY_VERSION`."""
    path = CRD_DIR / f"{PLURALS[kind]}-{KUBERAY_VERSION}.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


@functools.cache
def _validator(kind: str):
    return StructuralValidator(crd_schema(kind))


def _json_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def kuberay_errors(obj: dict[str, Any]) -> list[str]:
    """Each way ``obj`` breaks KubeRay's CRD schema, as ``"path: message"``; empty if none."""
    if not isinstance(obj, dict):
        return [f"<root>: not an object but {type(obj).__name__}"]
    errors = []
    if obj.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion: {obj.get('apiVersion')!r} is not {API_VERSION!r}")
    kind = obj.get("kind")
    if kind not in PLURALS:
        return [*errors, f"kind: {kind!r} is none of {sorted(PLURALS)}"]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        errors.append("metadata.name: required field is missing or not a string")
    if "spec" not in obj:
        errors.append("spec: required field is missing")
    found = sorted(
        _validator(kind).iter_errors(obj),
        key=lambda e: ([(isinstance(p, str), str(p), p if isinstance(p, int) else 0)
                        for p in e.absolute_path], e.message),
    )
    errors += [f"{_json_path(e.absolute_path)}: {e.message}" for e in found]
    return errors


def validate_kuberay(obj: dict[str, Any]) -> None:
    """Assert ``obj`` (a RayService or RayJob manifest) fits KubeRay :data:`KUBERAY_VERSION`'s
    CRD schema, unknown fields included; the AssertionError lists each error by path."""
    errors = kuberay_errors(obj)
    if errors:
        name = (obj.get("metadata") or {}).get("name") if isinstance(obj, dict) else None
        kind = obj.get("kind") if isinstance(obj, dict) else None
        raise AssertionError(
            f"{kind} {name!r} does not fit KubeRay {KUBERAY_VERSION}'s CRD schema "
            f"({len(errors)} error{'s' * (len(errors) != 1)}):\n"
            + "\n".join(f"  {e}" for e in errors)
        )


def validate_core(obj: dict[str, Any], k8s_version: str = KUBERNETES_VERSION) -> None:
    """Assert ``obj`` (a core Kubernetes object: Secret, ConfigMap, ...) fits the Kubernetes
    ``k8s_version`` API schema, unknown fields rejected (kubernetes-validate, strict)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = _json_path(exc.path) if getattr(exc, "path", None) is not None else "<root>"
        raise AssertionError(
            f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')!r} does not fit "
            f"Kubernetes {k8s_version}'s schema: {path}: {exc.message}"
        ) from exc
