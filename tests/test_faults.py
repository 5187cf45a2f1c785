"""Faults survived: a process killed mid-training or mid-write, cache files damaged by hand, a cache folder that
cannot be written. The kill tests run the engine (and the app's server) in subprocesses and SIGKILL them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import ui
from tests.appserver import start_app
from kd_core import paths, store
from kd_core.config import preset
from kd_core.jobs import IN_PROCESS_ENV

ROOT = Path(__file__).resolve().parent.parent
TINY = preset("classroom").replace(**ui.TINY_CHANGES)  # the run the app's Home page does in tiny mode
SMALL = TINY.replace(teacher_train_limit=100, student_train_limit=50, student_epochs=1)  # for the tests' own runs
OTHER = SMALL.replace(teacher_seed=1)                    # a run with its own teacher, killed and rerun
CHILD_TIMEOUT_S = 120
COMPARISON = "Test accuracy of the three models"   # the title of the Home page's comparison chart

# The engine in a child process. argv: mode, config JSON. Modes: "hold" (stop for good inside the teacher's
# training, after its 2nd step, to be killed there), "die-at:SUFFIX" (SIGKILL itself in os.replace, i.e. after
# the temp file is fully written but before the rename, for the first target ending in SUFFIX).
CHILD = r"""
import json, os, signal, sys, time
import torch
torch.set_num_threads(1)
from kd_core import store
from kd_core.config import RunConfig
from kd_core.experiment import run_experiment

mode, cfg = sys.argv[1], RunConfig(**json.loads(sys.argv[2]))
if mode.startswith("die-at:"):
    suffix, replace = mode[len("die-at:"):], os.replace
    def dying_replace(src, dst):
        if str(dst).endswith(suffix):
            print("DYING", dst, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(src, dst)
    os.replace = dying_replace

def on_event(event):
    if mode == "hold" and event.phase == "teacher" and event.progress.step >= 2:
        print("MID-TRAINING", flush=True)
        time.sleep(600)  # the parent kills us here

run_experiment(cfg, on_event=on_event)
"""


def child(cache: Path, mode: str, cfg, wait_for: str) -> str:
    """Run CHILD in `mode` on `cache`; SIGKILL it as soon as it prints a line starting with `wait_for`; that line."""
    env = {**os.environ, paths.CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", CHILD, mode, json.dumps(cfg.as_dict())]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith(wait_for):
                proc.send_signal(signal.SIGKILL)
                break
        assert proc.wait(CHILD_TIMEOUT_S) == -signal.SIGKILL, f"child ended before {wait_for!r}"
    finally:
        proc.kill()
        proc.stdout.close()
    return line


def snapshot(cache: Path) -> dict[str, bytes]:
    """Every finished file in the cache (relative path -> bytes); temp files left out."""
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*"))
            if p.is_file() and not p.name.endswith(".tmp")}


def temps(cache: Path) -> list[Path]:
    """Temp files a killed writer left."""
    return sorted(cache.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> tuple[Path, str]:
    """A cache folder holding one finished tiny run, and that run's key."""
    import torch

    from kd_core.data import load_dataset
    from kd_core.experiment import run_experiment

    cache = tmp_path_factory.mktemp("kill-cache")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.CACHE_ENV, str(cache))
        load_dataset.cache_clear()  # so the dataset's own cache file is written into this folder too
        torch.set_num_threads(1)
        key = run_experiment(TINY)["key"]
    torch.set_num_threads(threads)
    load_dataset.cache_clear()
    return cache, key


def test_kill_mid_training_and_mid_write_then_rerun(completed, monkeypatch, one_thread):
    from kd_core.data import load_dataset
    from kd_core.experiment import cached_result, cached_teacher, run_experiment

    cache, key = completed
    before = snapshot(cache)
    assert f"results/{key}.json" in before and any(name.startswith("teachers/") for name in before)

    # 1. killed while the teacher trains: nothing new on disk, not even a temp file
    child(cache, "hold", OTHER, wait_for="MID-TRAINING")
    assert snapshot(cache) == before and not temps(cache)

    # 2. killed between writing the teacher's checkpoint and renaming it: only a temp file, which no reader opens
    assert child(cache, "die-at:.pt", OTHER, wait_for="DYING").split()[1].endswith(".pt")
    assert snapshot(cache) == before
    [left] = temps(cache)
    assert left.parent.name == "teachers" and left.stat().st_size > 1000   # a whole checkpoint, unrenamed

    # 3. killed while writing the result: the teacher and students are kept, the result is not
    child(cache, "die-at:.json", OTHER, wait_for="DYING")
    after = snapshot(cache)
    new = sorted(set(after) - set(before))
    assert [n.split("/")[0] for n in new] == ["students", "students", "teachers"]
    assert {p.parent.name for p in temps(cache)} == {"teachers", "results"}

    # the engine in this process sees no result for the killed run, and a loadable teacher
    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    assert cached_result(OTHER, load_dataset(OTHER.dataset)) is None
    assert cached_teacher(OTHER, load_dataset(OTHER.dataset)) is not None

    # 4. rerun: completes (reusing the saved teacher); stale temps in the folders it writes to are deleted
    hour_ago = time.time() - 3600
    for t in temps(cache):
        os.utime(t, (hour_ago, hour_ago))
    assert run_experiment(OTHER)["cached"] is False
    assert [t.parent.name for t in temps(cache)] == ["teachers"]  # nothing was written to teachers/ this time
    assert cached_result(OTHER, load_dataset(OTHER.dataset)) is not None
    final = snapshot(cache)
    assert {n: final[n] for n in before} == before                # the earlier run's files are byte-identical


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:   # 0A = LISTEN
                found.add(address)
    return found


def _start_server(cache: Path, port: int) -> subprocess.Popen:
    """The app's server as `make run` starts it (no address flag: the shipped config's), tiny mode, on `cache`."""
    return start_app(port, {paths.CACHE_ENV: str(cache), ui.TINY_ENV: "1"})


def _healthy(port: int, proc: subprocess.Popen) -> bool:
    """Wait until the server answers its health check (False if it exits or takes over 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                return reply.read() == b"ok"
        except OSError:
            time.sleep(0.3)
    return False


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_server_killed_and_restarted_on_the_same_cache_serves_the_finished_run(completed, fresh_app, monkeypatch):
    cache, _ = completed
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for attempt in range(2):  # start, SIGKILL, start again
        server = _start_server(cache, port)
        try:
            assert _healthy(port, server), "server did not start"
            # a plain `streamlit run` listens on localhost only (.streamlit/config.toml)
            assert _listening_addresses(port) == {"0100007F"}   # 127.0.0.1
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(30)
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error
    assert any("Done" in s.value and "cache" in s.value for s in at.success)  # the finished run, from disk


# ----------------------------------------------------------------------------------- damaged cache files

@pytest.fixture()
def private_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder for this test, and no dataset loaded from another test's cache."""
    from kd_core.data import load_dataset

    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    load_dataset.cache_clear()
    yield tmp_path / "cache"
    load_dataset.cache_clear()


def truncate(path: Path) -> None:
    """Cut a file to half its length, as a crash of a non-atomic writer or a full disk would."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_dataset_cache_is_reported_removed_and_rebuilt(completed, private_cache, caplog):
    from kd_core.data import load_dataset

    [original] = completed[0].glob("datasets/*.npz")        # a good dataset cache file, copied here
    npz = private_cache / "datasets" / original.name
    npz.parent.mkdir(parents=True)
    npz.write_bytes(original.read_bytes()[: original.stat().st_size // 2])  # then cut in half
    again = load_dataset("mnist-sample")
    assert f"ignoring corrupt cache file {npz}" in caplog.text
    expected = store.load_npz(original)
    assert again.train_x.numpy().tobytes() == expected["train_x"].tobytes()   # rebuilt from the source
    assert store.load_npz(npz)["test_y"].tolist() == expected["test_y"].tolist()  # and cached again


def test_truncated_teacher_result_and_student_are_recomputed_equal(private_cache, one_thread, caplog):
    from kd_core.experiment import run_experiment, student_checkpoint_path

    fresh = run_experiment(SMALL)
    teacher = next(private_cache.glob("teachers/*.pt"))
    result = private_cache / "results" / f"{fresh['key']}.json"
    student = student_checkpoint_path(fresh, "distilled")
    for damaged in (teacher, result, student):
        truncate(damaged)
    assert store.load_checkpoint(student) is None      # as the Compare and Efficiency pages read it
    again = run_experiment(SMALL)
    assert not again["cached"] and not again["models"]["teacher"]["cached"]  # recomputed, not loaded
    for damaged in (teacher, result, student):
        assert f"ignoring corrupt cache file {damaged}" in caplog.text
    assert [m["accuracies"] for m in again["models"].values()] == [m["accuracies"] for m in fresh["models"].values()]
    assert store.load_checkpoint(student) is not None and store.load_json(result)["key"] == fresh["key"]


def test_truncated_text_corpora_are_reported_and_rebuilt_or_asked_for_again(private_cache, monkeypatch, caplog):
    from kd_core import lm

    monkeypatch.setattr(lm.corpus, "_TEXTS", {})   # texts this process holds in memory: none
    stdlib = lm.load_text("stdlib-small")
    uploaded = lm.register_text("An uploaded text. " * 200)
    monkeypatch.setattr(lm.corpus, "_TEXTS", {})   # a restarted server
    files = sorted(private_cache.glob("lm/corpora/*.json"))
    assert len(files) == 2
    for path in files:
        truncate(path)
    assert lm.load_text("stdlib-small") == stdlib                    # rebuilt from the standard library
    with pytest.raises(lm.CorpusError, match="upload it again"):     # the user's text cannot be rebuilt
        lm.load_text(uploaded)
    assert caplog.text.count("ignoring corrupt cache file") == 2


@pytest.mark.parametrize("damage", [b"", b"\x00" * 64, b"PK\x03\x04garbage", b'{"a": [1, 2'])
def test_any_damaged_file_reads_as_missing_and_is_removed(tmp_path, caplog, damage):
    for suffix, load in ((".json", store.load_json), (".npz", store.load_npz), (".pt", store.load_checkpoint)):
        path = tmp_path / f"x{suffix}"
        path.write_bytes(damage)
        assert load(path) is None and not path.exists()
    assert caplog.text.count("ignoring corrupt cache file") == 3


# ----------------------------------------------------------------------------------- unwritable cache folder

def _unwritable_cases(tmp_path: Path):
    """(name, cache folder, monkeypatch action) for each way a cache folder can refuse writes."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    yield "parent is a file", blocker / "cache", None

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    yield "disk full", tmp_path / "full", full
    if os.geteuid() != 0:  # root writes anyway
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        yield "read-only", locked, None


def test_unwritable_cache_folder_is_reported_once_and_runs_work(tmp_path, monkeypatch, caplog, one_thread):
    from kd_core.experiment import cached_result, run_experiment

    for name, folder, fail in _unwritable_cases(tmp_path):
        monkeypatch.setenv(paths.CACHE_ENV, str(folder))
        caplog.clear()
        with monkeypatch.context() as patch:
            if fail is not None:
                patch.setattr(os, "fsync", fail)   # every write, the check's included, ends in fsync
            assert store.check_writable() is not None, name
            result = run_experiment(SMALL.replace(teacher_seed=2))   # writes a teacher, 2 students, a result
            assert not store.save_json(store.cache_path("results", "another.json"), {}), name
        assert not result["cached"] and cached_result(SMALL.replace(teacher_seed=2)) is None, name  # ran; not kept
        warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "kd_core.store"]
        assert len(warnings) == 1 and "continuing without caching" in warnings[0].message, name  # said once
        assert not (folder.is_dir() and list(folder.rglob("*.tmp"))), name   # no temp file left behind


def run_demo(at) -> None:
    """Press Home's run button and rerun the page until the demo says Done, with no exception or error on the way."""
    at.button(key="home-run").click().run()
    deadline = time.monotonic() + 90
    while not any("Done" in s.value for s in at.success):
        assert time.monotonic() < deadline, "the demo did not finish"
        time.sleep(0.3)
        at.run()
        assert not at.exception and not at.error


def test_app_says_once_that_the_cache_is_unwritable_and_the_demo_still_runs(fresh_app, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(paths.CACHE_ENV, str(blocker / "cache"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error
    [warning] = [w.value for w in at.warning if "cache folder" in w.value]
    assert "not writable" in warning and "not kept" in warning
    run_demo(at)
    assert not [w for w in at.warning if "cache folder" in w.value]   # said once, not on every rerun


def test_a_job_carries_why_its_cache_writes_failed_and_only_its_own(tmp_path, one_thread):
    from kd_core.jobs import JobRunner

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    runner = JobRunner(workers=1)
    failing = runner.submit("failing", lambda report, stop: store.save_json(blocker / "r.json", {"a": 1}))
    fine = runner.submit("fine", lambda report, stop: store.save_json(tmp_path / "r.json", {"a": 1}))
    assert failing.wait(30) and fine.wait(30)
    assert failing.status == "done" and failing.result is False and failing.unsaved   # it ran; the reason is kept
    assert fine.status == "done" and fine.result is True and fine.unsaved is None
    assert not store.save_json(blocker / "page.json", {})   # a failed write outside a job: logged, nobody's job


def test_a_disk_that_fills_up_mid_run_is_told_once_to_the_session_that_ran_it(fresh_app, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.apptest import plotly_titles

    cache, fsync = tmp_path / "cache", os.fsync

    def full_once_the_teacher_is_saved(fd: int) -> None:
        """os.fsync on a disk whose last free space the teacher's checkpoint took."""
        if any(cache.glob("teachers/*.pt")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_once_the_teacher_is_saved)
    monkeypatch.setenv(IN_PROCESS_ENV, "1")   # the job runs where the patched fsync is
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error and not at.warning   # the disk still had room when the page opened
    run_demo(at)
    [told] = [w.value for w in at.warning if "could not be saved" in w.value]
    assert os.strerror(errno.ENOSPC) in told and "computed again next time" in told
    assert any(t.startswith(COMPARISON) for t in plotly_titles(at))        # the result is shown all the same
    assert not list(cache.rglob("*.tmp"))                                   # nothing partial is left behind
    assert not list(cache.glob("results/*")) and not list(cache.glob("students/*"))  # and no result without models
    at.run()
    assert not [w for w in at.warning if "could not be saved" in w.value]   # said once, not on every rerun
    assert any(t.startswith(COMPARISON) for t in plotly_titles(at))
    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()   # a session that did not ask for it
    assert not [w for w in other.warning if "could not be saved" in w.value]
    assert any(t.startswith(COMPARISON) for t in plotly_titles(other))


def test_stale_temp_files_are_deleted_fresh_ones_kept(tmp_path):
    target = tmp_path / "r.json"
    stale, fresh = tmp_path / ".r.json.old1.tmp", tmp_path / ".r.json.new2.tmp"
    for t in (stale, fresh):
        t.write_bytes(b"partial")
    old = time.time() - store.STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    assert store.save_json(target, {"a": 1})
    assert not stale.exists() and fresh.exists()      # a fresh one may belong to a concurrent writer
    assert store.load_json(target) == {"a": 1}


def test_npz_never_unpickles(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))   # an object array needs pickle to load
    assert store.load_npz(path) is None
