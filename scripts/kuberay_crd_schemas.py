"""Extract the ``openAPIV3Schema`` of KubeRay's RayService and RayJob CRDs from a git tag.

The test helper ``tests/cluster/kuberay/crd_schema.py`` validates the manifests the product
generates against these schemas. They were built from KubeRay's tag ``v1.7.0`` by this
script, run on a clone of https://github.com/ray-project/kuberay::

    python scripts/kuberay_crd_schemas.py /path/to/kuberay v1.7.0

For each CRD it reads ``ray-operator/config/crd/bases/ray.io_<plural>.yaml`` at the tag
(``git show``, so a bare repository works and no checkout is touched), takes the schema of
the CRD's ``v1`` version and writes it to ``tests/cluster/kuberay/crds/<plural>-<tag>.json.gz``
as compact JSON with sorted keys, gzipped without a timestamp or file name in the header:
the same tag gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
from pathlib import Path

import yaml

#: The CRDs whose schemas the tests need, by plural name.
PLURALS = ("rayservices", "rayjobs")
#: The CRD version the product generates (``apiVersion: ray.io/v1``).
VERSION = "v1"
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "cluster" / "kuberay" / "crds"


def crd_schema(repo: Path, tag: str, plural: str) -> dict:
    """The ``openAPIV3Schema`` of ``plural``'s ``v1`` version in ``repo`` at ``tag``."""
    path = f"ray-operator/config/crd/bases/ray.io_{plural}.yaml"
    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{tag}:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout
    crd = yaml.safe_load(text)
    if crd.get("kind") != "CustomResourceDefinition" or crd["spec"]["names"]["plural"] != plural:
        raise SystemExit(f"{path} at {tag} is not the CRD of {plural}")
    versions = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    if len(versions) != 1:
        raise SystemExit(f"{path} at {tag} has {len(versions)} versions named {VERSION}")
    return versions[0]["schema"]["openAPIV3Schema"]


def write_schema(schema: dict, out: Path) -> None:
    data = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the gzip header: reproducible bytes.
    with open(out, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
    ) as gz:
        gz.write(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a KubeRay git repository (bare is fine)")
    parser.add_argument("tag", help="the KubeRay tag, e.g. v1.7.0")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    for plural in PLURALS:
        out = args.out_dir / f"{plural}-{args.tag}.json.gz"
        write_schema(crd_schema(args.repo, args.tag, plural), out)
        print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
