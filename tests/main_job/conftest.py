"""The main job as a user runs it, once for this package: ``garden demo`` in a fresh
GARDEN_HOME on a small slice (few steps, two questions). ``test_demo.py`` checks what it
stored; ``test_console.py`` then browses the same cluster through its web console."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

GARDEN = str(Path(sys.executable).with_name("garden"))


@dataclass
class Demo:
    """The demo's run: its GARDEN_HOME, environment, what it printed (``stdout``; with
    the logs on stderr: ``output``), its exit code, and the console URL it printed."""

    home: Path
    env: dict[str, str]
    stdout: str
    output: str
    returncode: int
    console_url: str | None

    @property
    def admin_key(self) -> str:
        return (self.home / "admin.key").read_text().strip()


#: Held-out prompts the demo's evaluation answers with each model (the demo's default:
#: 32; 8 keep the package's run short on 2 cores).
EVALUATE_N = 8


@pytest.fixture(scope="package")
def demo(tmp_path_factory) -> Demo:
    home = tmp_path_factory.mktemp("demo") / "garden"
    env = dict(os.environ, GARDEN_HOME=str(home), COLUMNS="200", RAY_AUTH_MODE="token")
    env.pop("GARDEN_DATABASE_URL", None)
    env.pop("GARDEN_ADMIN_KEY", None)  # the demo makes its own key, as for a new user
    cmd = [GARDEN, "demo", "--steps", "8", "--questions", "2", "--evaluate", str(EVALUATE_N),
           "--http-port", str(free_port()), "--ray-port", str(free_port()),
           "--dashboard-port", str(free_port()), "--agent-port", str(free_port())]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200,
                              check=False)
        output = done.stdout + done.stderr
        found = re.search(r"web console: (\S+)", output)
        yield Demo(home=home, env=env, stdout=done.stdout, output=output,
                   returncode=done.returncode,
                   console_url=found.group(1) if found else None)
    finally:
        subprocess.run([GARDEN, "down"], env=env, timeout=120, check=False)
