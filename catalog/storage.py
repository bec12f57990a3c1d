"""Shared storage by URI: where datasets, base models, checkpoints, adapters and media
outputs live, so that every node of a cluster reads what any node wrote.

``GARDEN_STORAGE_URI`` names the root: a local folder (default ``$GARDEN_HOME``; on a
cluster, a shared filesystem mounted at the same path on every node) or an object
store URI, ``s3://bucket/prefix`` or ``gs://bucket/prefix``. Catalog rows store the
full location (a local path or a URI); what lives under the root::

    datasets/<name>/v<version>-<random>/<file>   registered dataset files
    models/<name>/ , models/<name>-v<n>-<random>/  base models and trained adapters
    runs/job-<id>/checkpoint-<step>/        Ray Train's RunConfig.storage_path
    media/<prediction id>/<index>.<ext>     provider outputs
    spool/usage/usage-<host>-<pid>-<random>.jsonl   usage records no catalog has
                                            acknowledged yet (catalog.usage_buffer)

Files move with :mod:`pyarrow.fs`, the filesystem layer Ray Train itself uses for
``RunConfig.storage_path``. S3 takes its credentials the AWS way (``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, or the node's instance role), its
region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` and an endpoint override (MinIO,
Ceph, moto) from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, the variables the AWS
SDKs read. Google Cloud Storage uses Application Default Credentials.

What is stored is never rewritten in place (datasets and adapters get a fresh location
per version, :func:`fresh`; checkpoints are per step), so :func:`local_copy` copies a
remote object once per node into ``$GARDEN_HOME/cache`` and reuses that copy without
asking the store again.
Local paths pass through every function unchanged and need no pyarrow.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from catalog.config import garden_home

if TYPE_CHECKING:
    import pyarrow.fs as pafs

#: The environment variable naming the storage root.
STORAGE_URI_ENV = "GARDEN_STORAGE_URI"

#: URI schemes read through pyarrow.fs; anything else is a local path.
REMOTE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")

#: URI scheme of each pyarrow filesystem type (``FileSystem.type_name``).
_SCHEME_OF_FS = {"s3": "s3", "gcs": "gs", "hdfs": "hdfs", "abfs": "abfs"}


def storage_uri() -> str:
    """The storage root: ``GARDEN_STORAGE_URI`` (trailing slash removed), or the local
    folder ``$GARDEN_HOME`` when unset."""
    uri = os.environ.get(STORAGE_URI_ENV, "").strip()
    if uri:
        return uri.rstrip("/") if is_remote(uri) else str(Path(uri).expanduser())
    return str(garden_home())


def is_remote(location: str) -> bool:
    """Whether ``location`` is an object-store URI (``s3://``, ``gs://``, ...) rather
    than a local path."""
    return urlparse(str(location)).scheme in REMOTE_SCHEMES


def join(base: str, *parts: str) -> str:
    """``base`` with ``parts`` appended: ``/`` for URIs, the OS rule for local paths."""
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


def location(*parts: str) -> str:
    """A location under the storage root, e.g. ``location("models", "x-v1")``."""
    return join(storage_uri(), *parts)


def safe_name(name: str) -> str:
    """``name`` as one path component: every character but letters, digits and ``-_.``
    becomes ``_`` (``"../my data"`` -> ``".._my_data"``), so a user's name can neither
    nest nor leave the folder it is put in."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def fresh(name: str) -> str:
    """``name`` as one path component (:func:`safe_name`) with a random suffix
    (``name-3f2a9c1e``), for a location written once.

    Nothing stored is rewritten, and every node's cache is keyed by location: a version
    number reused after a delete (``next_version`` is highest + 1), or two registrations
    racing for one name, must still land at new locations, or a node would serve the
    bytes it cached before."""
    return f"{safe_name(name)}-{uuid.uuid4().hex[:8]}"


def name_of(location_: str) -> str:
    """The last component of a path or URI (``s3://b/x/data.jsonl`` -> ``data.jsonl``)."""
    if is_remote(location_):
        return PurePosixPath(urlparse(location_).path).name
    return Path(location_).name


def _local(location_: str) -> Path:
    """A local location as a Path (``file:///x`` URIs included, ``~`` expanded)."""
    parsed = urlparse(str(location_))
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(location_).expanduser()


def _s3_filesystem() -> pafs.FileSystem:
    import pyarrow.fs as pafs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    kwargs: dict[str, str] = {}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def filesystem(location_: str) -> tuple[pafs.FileSystem, str]:
    """``(pyarrow filesystem, path within it)`` for a path or URI.

    ``s3://bucket/key`` gives an ``S3FileSystem`` configured from the AWS variables
    (endpoint override included) and ``bucket/key``; other URIs go through
    ``pyarrow.fs.FileSystem.from_uri``; a local path gives ``LocalFileSystem`` and
    its absolute form.

    Raises:
        pyarrow.ArrowInvalid: a URI pyarrow cannot parse or has no filesystem for.
    """
    import pyarrow.fs as pafs

    if not is_remote(location_):
        return pafs.LocalFileSystem(), str(_local(location_).absolute())
    parsed = urlparse(location_)
    if parsed.scheme == "s3":
        return _s3_filesystem(), f"{parsed.netloc}{parsed.path}".rstrip("/")
    fs, path = pafs.FileSystem.from_uri(location_)
    return fs, path.rstrip("/")


def uri_of(fs: pafs.FileSystem, path: str) -> str:
    """The location of ``path`` on ``fs`` as catalog rows store it: a URI for object
    stores (``s3://bucket/key``), the plain path for the local filesystem."""
    scheme = _SCHEME_OF_FS.get(fs.type_name)
    return f"{scheme}://{path.lstrip('/')}" if scheme else path


def ray_storage() -> tuple[str, pafs.FileSystem | None]:
    """``(storage_path, storage_filesystem)`` for Ray Train's ``RunConfig``: the
    ``runs`` folder under the storage root; a filesystem only for object stores (Ray
    then takes the path without its scheme)."""
    root = location("runs")
    if not is_remote(root):
        Path(root).mkdir(parents=True, exist_ok=True)
        return root, None
    fs, path = filesystem(root)
    return path, fs


def exists(location_: str) -> bool:
    """Whether a file or folder exists at ``location_``."""
    if not is_remote(location_):
        return _local(location_).exists()
    import pyarrow.fs as pafs

    fs, path = filesystem(location_)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(location_: str) -> bool:
    """Whether a file (not a folder) exists at ``location_``."""
    if not is_remote(location_):
        return _local(location_).is_file()
    import pyarrow.fs as pafs

    fs, path = filesystem(location_)
    return fs.get_file_info(path).type == pafs.FileType.File


def list_files(folder: str) -> list[str]:
    """The files directly in ``folder`` (not in its subfolders), as locations in the
    folder's form (local paths or URIs), sorted; empty when the folder does not exist."""
    if not is_remote(folder):
        path = _local(folder)
        if not path.is_dir():
            return []
        return sorted(str(p) for p in path.iterdir() if p.is_file())
    import pyarrow.fs as pafs

    fs, path_ = filesystem(folder)
    infos = fs.get_file_info(pafs.FileSelector(path_, allow_not_found=True))
    return sorted(uri_of(fs, i.path) for i in infos if i.type == pafs.FileType.File)


def size_bytes(location_: str) -> int:
    """Bytes of a file, or of every file under a folder (0 when nothing is there)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location_)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return int(info.size or 0)
    if info.type == pafs.FileType.NotFound:
        return 0
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sum(int(i.size or 0) for i in infos if i.type == pafs.FileType.File)


def _ignored(relative: str, ignore: Sequence[str]) -> bool:
    return any(fnmatch(part, pattern) for part in PurePosixPath(relative).parts
               for pattern in ignore)


def copy(source: str, dest: str, *, ignore: Sequence[str] = ()) -> str:
    """Copy a file or a folder tree from ``source`` to ``dest`` (paths or URIs, in any
    combination); names matching an ``ignore`` glob (any path component, as
    ``shutil.ignore_patterns``) are left out. Returns ``dest``.

    Raises:
        FileNotFoundError: nothing at ``source``.
        OSError: the store refused a read or write (pyarrow's message).
    """
    import pyarrow.fs as pafs

    src_fs, src_path = filesystem(source)
    dst_fs, dst_path = filesystem(dest)
    info = src_fs.get_file_info(src_path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"nothing to copy at {source}")
    if info.type == pafs.FileType.File:
        _copy_file(src_fs, src_path, dst_fs, dst_path)
        return dest
    for item in src_fs.get_file_info(pafs.FileSelector(src_path, recursive=True)):
        if item.type != pafs.FileType.File:
            continue
        relative = PurePosixPath(item.path).relative_to(PurePosixPath(src_path)).as_posix()
        if _ignored(relative, ignore):
            continue
        _copy_file(src_fs, item.path, dst_fs, f"{dst_path}/{relative}")
    return dest


def _copy_file(src_fs, src_path: str, dst_fs, dst_path: str) -> None:
    parent = PurePosixPath(dst_path).parent.as_posix()
    dst_fs.create_dir(parent, recursive=True)
    with src_fs.open_input_stream(src_path) as reader, \
            dst_fs.open_output_stream(dst_path) as writer:
        shutil.copyfileobj(reader, writer, length=8 * 2**20)


def put(local: Path | str, dest: str, *, ignore: Sequence[str] = ()) -> str:
    """Store a local file or folder at ``dest`` (a location under the storage root);
    a local ``dest`` that is the same path is left alone. Returns ``dest``.

    Raises:
        FileNotFoundError: ``local`` does not exist. OSError: the store refused a write.
    """
    if not is_remote(dest) and _local(dest).resolve() == Path(local).resolve():
        return dest
    return copy(str(local), dest, ignore=ignore)


def write_bytes(dest: str, data: bytes) -> str:
    """Write ``data`` as the file ``dest`` (a local path is written through a temporary
    file and renamed, so a reader never sees half of it). Returns ``dest``."""
    if not is_remote(dest):
        path = _local(dest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return dest
    fs, path_ = filesystem(dest)
    with fs.open_output_stream(path_) as writer:  # an object store writes all or nothing
        writer.write(data)
    return dest


def read_bytes(source: str) -> bytes:
    """The bytes of the file at ``source``. Raises FileNotFoundError."""
    if not is_remote(source):
        return _local(source).read_bytes()
    fs, path = filesystem(source)
    try:
        with fs.open_input_stream(path) as reader:
            return reader.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        if not exists(source):
            raise FileNotFoundError(f"no file at {source}") from exc
        raise


def delete(location_: str) -> None:
    """Remove a file or a folder tree; nothing there is not an error."""
    if not is_remote(location_):
        path = _local(location_)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return
    import pyarrow.fs as pafs

    fs, path_ = filesystem(location_)
    info = fs.get_file_info(path_)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path_)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path_)


def cache_root() -> Path:
    """This node's cache of remote objects: ``$GARDEN_HOME/cache``."""
    return garden_home() / "cache"


def local_copy(location_: str, *, cache: Path | None = None) -> Path:
    """A local path holding the file or folder at ``location_``.

    A local path is returned as it is. A URI is copied once into
    ``<cache>/<sha256 of the URI, 16 hex>/<its last name>`` (``cache`` defaults to
    :func:`cache_root`) through a private temporary folder renamed into place, so
    concurrent callers on one node (Train workers, replicas) never see a partial copy;
    later calls return the copy without contacting the store.

    Raises:
        FileNotFoundError: nothing at ``location_``.
        OSError: the store refused the read.
    """
    if not is_remote(location_):
        path = _local(location_)
        if not path.exists():
            raise FileNotFoundError(f"no file or folder at {location_}")
        return path
    key = hashlib.sha256(location_.encode()).hexdigest()[:16]
    folder = (cache or cache_root()) / key
    dest = folder / (name_of(location_) or "object")
    if dest.exists():
        return dest
    staging = folder.with_name(f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir(parents=True)
    try:
        copy(location_, str(staging / dest.name))
        try:
            staging.rename(folder)
        except OSError:  # another process on this node finished first
            if not dest.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
