"""Shared pieces of the fake provider servers: a uvicorn runner on a free port, fault
injection, call counting, and real tiny PNG / MP4 bytes."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import cache

import uvicorn
from PIL import Image


@dataclass
class Faults:
    """Queued error answers per route key (``"create"``, ``"get"``, ...): each entry is
    ``(status, retry_after_seconds or None)`` and is used once."""

    queue: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)

    def add(self, key: str, status: int, retry_after: float | None = None, times: int = 1):
        self.queue.setdefault(key, []).extend([(status, retry_after)] * times)

    def take(self, key: str) -> tuple[int, float | None] | None:
        items = self.queue.get(key)
        return items.pop(0) if items else None

    def clear(self) -> None:
        self.queue.clear()


@dataclass
class FakeState:
    """What a fake remembers; tests read ``calls`` and ``sent`` and set ``faults``,
    ``job_s``. ``sent``: ``(route key, request fields)`` of the latest accepted creates,
    newest last (form fields as strings, JSON bodies as parsed)."""

    token: str
    job_s: float = 0.3
    latency_s: float = 0.0  # added to synchronous answers (simulated generation time)
    slow_s: float = 3.0
    file_ttl_s: float = 3600.0
    faults: Faults = field(default_factory=Faults)
    calls: Counter = field(default_factory=Counter)
    jobs: dict = field(default_factory=dict)
    sent: deque = field(default_factory=lambda: deque(maxlen=100))

    def duration(self, prompt: str | None) -> float:
        return self.slow_s if prompt and "[slow]" in prompt else self.job_s


@cache
def png_bytes(width: int = 64, height: int = 64, color: tuple = (200, 80, 40)) -> bytes:
    """A real PNG of the given size."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


@cache
def mp4_bytes(width: int = 64, height: int = 48, frames: int = 8) -> bytes:
    """A real MP4 (MPEG-4 part 2 video) written by OpenCV."""
    import tempfile

    import cv2
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/clip.mp4"
        writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), 8, (width, height))
        for i in range(frames):
            writer.write(np.full((height, width, 3), i * 30, np.uint8))
        writer.release()
        with open(path, "rb") as fh:
            return fh.read()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeServer:
    """Serve an ASGI app with uvicorn in a daemon thread; ``url`` once started."""

    def __init__(self, app, state: FakeState):
        self.app = app
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app.state.base_url = self.url
        self._server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            limit_concurrency=2000, backlog=2048))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self, timeout_s: float = 10.0) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
