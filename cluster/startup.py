"""What ``garden up`` checks around ``ray start``, and what it keeps when the start fails.

- Before: each port the head will listen on is free (a bind test, as the server itself
  would bind), or the error names the process that holds it (pid, name and, for a Ray
  process, its cluster's temp dir and session, read from its command line, and the
  ``GARDEN_HOME`` of a cluster that ``garden up`` started) and the flag that picks
  another port.
- After: the head's GCS address and session, read from what ``ray start`` recorded in its
  own temp dir (``<temp dir>/ray_current_cluster``, written by Ray's ``scripts.py``
  through ``write_ray_address``, and the ``session_latest`` symlink that ``node.py``
  points at the session folder), so the driver connects to that head and checks it did.
- On failure: the session's ``logs`` folder moves under ``$GARDEN_HOME/logs/<session>/``
  before the temp dir is deleted, and the error quotes the last records of
  ``gcs_server.out`` and ``raylet.out`` (read before the processes were stopped) and
  says what to try.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: What ``ray start`` writes in its temp dir (Ray 2.60: ``ray._common.utils.
#: get_ray_address_file`` and ``ray_constants.SESSION_LATEST``).
ADDRESS_FILE = "ray_current_cluster"
SESSION_LATEST = "session_latest"
#: Set in the environment of every process of a ``garden up`` cluster to its Ray temp
#: folder (:func:`cluster.local.cluster_processes`).
CLUSTER_ENV = "GARDEN_RAY_TEMP_DIR"
#: Lines of each log that a failed start quotes.
TAIL_LINES = 20
TAILED_LOGS = ("gcs_server.out", "raylet.out")


class ClusterStartError(RuntimeError):
    """The local cluster did not start; the message says why, where Ray's logs were kept
    (``logs_dir``, None when Ray wrote none) and what to try."""

    def __init__(self, message: str, logs_dir: Path | None = None) -> None:
        super().__init__(message)
        self.logs_dir = logs_dir


class PortInUseError(ClusterStartError):
    """A port the head needs is taken; the message names each one, its holder and the flag
    that picks another port."""


@dataclass(frozen=True)
class Port:
    """A TCP port the head will listen on: ``number`` bound on ``bind_host`` by the
    service ``role``, chosen with the CLI option ``flag``."""

    number: int
    role: str
    flag: str
    bind_host: str


@dataclass(frozen=True)
class HeadSession:
    """The head a ``ray start --temp-dir=...`` started: its GCS ``address`` (host:port)
    and ``name`` (``session_<date>_<pid>``, also the session folder's name)."""

    address: str
    name: str


def port_free(port: Port) -> bool:
    """Whether ``port.number`` can be bound on ``port.bind_host`` now, with
    ``SO_REUSEADDR`` as servers set it (a connection in TIME_WAIT does not hold a port).
    ``0.0.0.0`` means every interface and is tried as ``::`` dual-stack where the host
    has IPv6, as Ray's gRPC servers bind, so a holder on any IPv4 or IPv6 address counts.
    """
    candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")] if (
        port.bind_host == "0.0.0.0") else [
        (socket.AF_INET6 if ":" in port.bind_host else socket.AF_INET, port.bind_host)]
    for family, address in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and address == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                sock.bind((address, port.number))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                raise
        return True
    raise OSError(f"cannot test port {port.number}: no socket family works here")


def port_holder(number: int) -> str:
    """Who listens on TCP port ``number`` of this host, in words: ``pid 123 (gcs_server),
    Ray cluster /tmp/garden-ray-6380-x1 (session session_...)``, and for a cluster that
    ``garden up`` started, its ``GARDEN_HOME``. Processes of other users are hidden from
    psutil; then it says the holder is unknown."""
    import psutil

    pids = {conn.pid for conn in psutil.net_connections(kind="inet")
            if conn.laddr and conn.laddr.port == number and conn.status == psutil.CONN_LISTEN
            and conn.pid}
    if not pids:
        return ("no process this user can see (another user's, one that only bound it, "
                "or a port this user may not bind)")
    return "; ".join(_describe(pid) for pid in sorted(pids))


def _describe(pid: int) -> str:
    import psutil

    try:
        proc = psutil.Process(pid)
        name, cmdline = proc.name(), proc.cmdline()
    except psutil.Error:
        return f"pid {pid}"
    try:
        environ = proc.environ()
    except psutil.Error:
        environ = {}
    flags = {}  # --session_dir=... and --session-dir=... alike
    for part in cmdline:
        if part.startswith("--") and "=" in part:
            key, value = part[2:].split("=", 1)
            flags[key.replace("_", "-")] = value
    session_dir = flags.get("session-dir")
    temp_dir = flags.get("temp-dir") or (str(Path(session_dir).parent) if session_dir else None)
    session = flags.get("session-name") or (Path(session_dir).name if session_dir else None)
    if temp_dir is None:
        return f"pid {pid} ({name})"
    text = f"pid {pid} ({name}), Ray cluster {temp_dir}"
    if session:
        text += f" (session {session})"
    if CLUSTER_ENV in environ and "GARDEN_HOME" in environ:
        text += (f", started by garden up with GARDEN_HOME={environ['GARDEN_HOME']} "
                 "(garden down there stops it)")
    return text


def check_ports(ports: Iterable[Port]) -> None:
    """Raise :class:`PortInUseError` naming every port of ``ports`` that is held.

    Raises:
        PortInUseError: one line per held port: number, role, holder, flag to change.
    """
    held = [port for port in ports if not port_free(port)]
    if held:
        raise PortInUseError("\n".join(held_message(port) for port in held))


def held_message(port: Port) -> str:
    """One line on a held port: what needs it, who holds it, which flag moves it."""
    return (f"port {port.number} ({port.role}) is taken by {port_holder(port.number)}: "
            f"pick another with {port.flag} (or stop that process)")


def head_session(temp_dir: str) -> HeadSession:
    """The GCS address and session that ``ray start --temp-dir=temp_dir`` recorded.

    Raises:
        ClusterStartError: ``ray start`` recorded no address or session there.
    """
    address_file = Path(temp_dir) / ADDRESS_FILE
    latest = Path(temp_dir) / SESSION_LATEST
    if not address_file.is_file() or not latest.is_symlink():
        raise ClusterStartError(f"ray start recorded no head in {temp_dir} "
                                f"(no {ADDRESS_FILE} or {SESSION_LATEST})")
    return HeadSession(address=address_file.read_text().strip(),
                       name=Path(os.readlink(latest)).name)


def keep_logs(temp_dir: str, dest_root: Path) -> Path | None:
    """Move the ``logs`` folder of each session under ``temp_dir`` to
    ``dest_root/<session name>/`` (a suffix ``-1``, ``-2`` ... when taken) and return the
    newest one's new path; None when Ray wrote no logs. Stop the cluster's processes
    first: they write there until they exit."""
    kept = None
    sessions = sorted(p for p in Path(temp_dir).glob("session_*")
                      if p.is_dir() and not p.is_symlink() and (p / "logs").is_dir())
    for session in sessions:
        dest = dest_root / session.name
        for n in range(1, 100):
            if not dest.exists():
                break
            dest = dest_root / f"{session.name}-{n}"
        dest_root.mkdir(parents=True, exist_ok=True)
        shutil.move(str(session / "logs"), str(dest))
        kept = dest
    return kept


def tail(path: Path, lines: int = TAIL_LINES, max_bytes: int = 64 * 1024) -> list[str]:
    """The last ``lines`` log records of Ray's C++ log ``path`` (``gcs_server.out``,
    ``raylet.out``), one line each: the first line of each record (``[date time LEVEL
    pid tid] ...``), without the info records that head a periodic dump (event stats,
    debug state: they end with ``:``) and without continuation lines (dump tables, stack
    frames); the whole file is kept beside. A file with no such records gives its last
    lines as they are. Read from the file's last ``max_bytes`` (Ray rotates its logs at
    512 MiB); [] when it is missing."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    records = [line for line in text.splitlines() if (m := _RECORD.match(line))
               and not (m.group(1) == "I" and line.rstrip().endswith(":"))]
    return (records or [line for line in text.splitlines() if line.strip()])[-lines:]


#: A Ray C++ log record's first line: ``[2026-12-06 22:13:15,149 C 13005 13005] ...``.
_RECORD = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,.]+ ([A-Z]) ")


def summary(exc: BaseException, head: int = 1, last: int = 3) -> str:
    """``exc`` in a few lines: ``Type: `` and the first ``head`` and the last ``last``
    non-blank lines of its text (a Ray error carries the remote traceback between them,
    which the kept logs hold), without terminal colour codes."""
    lines = [line for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    if len(lines) > head + last + 1:
        lines = [*lines[:head], "  ...", *lines[-last:]]
    return f"{type(exc).__name__}: " + "\n".join(lines)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def quote_logs(temp_dir: str) -> list[str]:
    """The tails (:func:`tail`) of ``gcs_server.out`` and ``raylet.out`` of the newest
    session under ``temp_dir``, each under a ``--- name (last n lines) ---`` rule. Read
    them before stopping the processes, whose own shutdown would fill the tail."""
    sessions = sorted(Path(temp_dir).glob("session_2*"))
    quoted: list[str] = []
    for name in TAILED_LOGS if sessions else ():
        lines = tail(sessions[-1] / "logs" / name)
        if lines:
            quoted += [f"--- {name} (last {len(lines)} lines) ---", *lines]
    return quoted


def failure(what: str, *, ports: Iterable[Port], logs_dir: Path | None,
            quoted: list[str], ray_output: str = "") -> ClusterStartError:
    """The error for a start that failed after ``ray start`` was run: ``what`` happened,
    any port now held by another process, ``ray_output`` (the command's own output, when
    it failed), where the logs were kept (``logs_dir``), the ``quoted`` log tails, and
    what to try."""
    parts = [what]
    held = [held_message(port) for port in ports if not port_free(port)]
    parts += held
    if ray_output.strip():
        parts += ["ray start said:", *ray_output.strip().splitlines()[-TAIL_LINES:]]
    parts.append("Ray wrote no logs." if logs_dir is None else
                 f"Ray's logs are kept in {logs_dir}")
    parts += quoted
    parts.append("What to try: " + (
        "free those ports or pick others with the flags above, then garden up again."
        if held else
        "run it again (a busy machine starts Ray slowly: garden up --timeout gives each "
        "step longer); the logs (gcs_server.out, raylet.out, serve/, worker-*.err) say "
        "what failed."))
    return ClusterStartError("\n".join(parts), logs_dir=logs_dir)
