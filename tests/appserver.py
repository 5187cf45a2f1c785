"""The app's server as `make run` starts it: the same command line and the shipped .streamlit/config.toml.

Every test and benchmark that needs a real server starts it here, so none can switch on or off a setting
that users do not get (a file watcher once cost every user half the CPU, unseen by tests that turned it off).
Only environment variables differ (a private cache folder, tiny mode), never Streamlit flags or config.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Iterator

ROOT = Path(__file__).resolve().parent.parent


def make_run_arguments() -> list[str]:
    """The arguments `make run` gives `python -m streamlit` (read from the Makefile), with $(PORT) left as is."""
    recipe = re.search(r"^run:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None, "the Makefile has no run target"
    command = recipe.group(1).split()
    return command[command.index("streamlit") + 1:]


def app_command(port: int) -> list[str]:
    """`python -m streamlit run app.py ...` exactly as `make run` types it, on `port`."""
    return [sys.executable, "-m", "streamlit",
            *(str(port) if arg == "$(PORT)" else arg for arg in make_run_arguments())]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, env: dict[str, str], log: IO | int = subprocess.DEVNULL) -> subprocess.Popen:
    """The app's server on `port` with `env` added to this process's environment; its output to `log`."""
    return subprocess.Popen(app_command(port), cwd=ROOT, env={**os.environ, **env}, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    """Seconds until the server at `url` answers its health check; raises if it exits or `timeout` passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"streamlit did not become healthy within {timeout:.0f} s")


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The app's server as `make run` starts it with `env` added, output to `log`, healthy (else the test fails
    with the log); killed at the end."""
    import pytest

    port = free_port()
    with open(log, "w") as out:
        proc = start_app(port, env, out)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(url, proc)
        except RuntimeError as exc:
            pytest.fail(f"{exc}:\n{log.read_text()}")
        yield url, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) the process `pid` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
