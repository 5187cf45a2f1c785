"""The isolated job runner (the app's): work runs in a child process, and everything a page reads comes back."""

import os
import signal
import time

import pytest

from kd_core import paths, store, worker
from kd_core.jobs import JobRunner
from kd_core.train import TrainingCancelled


@pytest.fixture()
def runner():
    """An isolated runner, closed (its child process ended) after the test."""
    isolated = JobRunner(workers=1, isolated=True)
    yield isolated
    isolated.close()


def wait_for_first_event(job) -> None:
    """Wait (at most 60 s) until the child has reported once: its work is running."""
    deadline = time.monotonic() + 60
    while not job.events and time.monotonic() < deadline:
        time.sleep(0.05)


def report_pid_and_env(report, should_stop):
    """Work that reports its process id and returns what the child's environment says."""
    report(("pid", os.getpid()))
    return {"pid": os.getpid(), "env": os.environ.get("KD_TEST_WORKER"), "nice": os.nice(0)}


def loop_until_stopped(report, should_stop):
    """Work that runs until Stop reaches it."""
    report(("pid", os.getpid()))
    while not should_stop():
        time.sleep(0.01)
    raise TrainingCancelled()


def divide_by_zero(report, should_stop):
    """Work that raises."""
    return 1 / 0


def write_into_a_file(report, should_stop):
    """Work whose cache write fails: its folder is a file."""
    blocker = paths.cache_dir() / "not-a-folder"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("x")
    return store.atomic_write(blocker / "result.json", b"{}")


def test_work_runs_in_a_child_with_this_processs_environment(runner, monkeypatch):
    monkeypatch.setenv("KD_TEST_WORKER", "set at submit")
    job = runner.submit("pid", report_pid_and_env)
    assert job.wait(60) and job.status == "done", job.error
    assert job.result["pid"] != os.getpid() and job.result["env"] == "set at submit"
    assert job.result["nice"] == min(19, os.nice(0) + worker.NICENESS)  # training yields the cores to the pages
    assert job.events == [("pid", job.result["pid"])]
    again = runner.submit("pid-again", report_pid_and_env)  # the same child serves the next job
    assert again.wait(60) and again.result["pid"] == job.result["pid"]


def torch_thread_count(report, should_stop):
    """Work that returns the child's torch thread count."""
    import torch

    return torch.get_num_threads()


def test_a_child_trains_on_every_core_while_the_server_keeps_its_reserved_one(monkeypatch):
    """The child runs below the server's priority, so it may use all cores; the server's own torch keeps to the rest."""
    import torch

    from kd_core.worker import cores_per_worker

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this test process keeps its own count
    isolated = JobRunner(workers=1, reserved_cores=1, isolated=True)
    try:
        assert isolated.threads_per_job == cores_per_worker(1) >= cores_per_worker(1, reserved_cores=1)
        job = isolated.submit("threads", torch_thread_count)
        assert job.wait(60) and job.result == isolated.threads_per_job, job.error
    finally:
        isolated.close()
    assert JobRunner(workers=1, reserved_cores=1).threads_per_job == cores_per_worker(1, reserved_cores=1)


def worker_children() -> set[int]:
    """Process ids of this process's children that run kd_core.worker (Linux's /proc)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            command = open(f"/proc/{pid}/cmdline", "rb").read()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if parent == os.getpid() and b"kd_core.worker" in command:
            found.add(int(pid))
    return found


def dead(pid: int) -> bool:
    """Whether child process `pid` has ended with all its threads (a zombie its parent can reap now)."""
    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    return state == "Z" and len(os.listdir(f"/proc/{pid}/task")) == 1  # a leader waits for its threads' exit


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists child processes through /proc")
def test_a_runner_started_now_has_its_child_before_the_first_job_and_replaces_one_killed_while_idle():
    """A served app's runner starts its training process at once, so the first job does not wait for Python and
    torch to start; a child that died while idle is not handed a job."""
    before = worker_children()
    started = JobRunner(workers=1, isolated=True, start_now=True)
    try:
        [child] = worker_children() - before
        job = started.submit("first", report_pid_and_env)
        assert job.wait(60) and job.status == "done" and job.result["pid"] == child, job.error
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not dead(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = started.submit("after-kill", report_pid_and_env)
        assert after.wait(60) and after.status == "done" and after.result["pid"] != child, after.error
    finally:
        started.close()
    lazy = JobRunner(workers=1, isolated=True)
    try:
        assert worker_children() == before  # without start_now: no child until a job comes
    finally:
        lazy.close()


def test_work_closures_travel_by_value(runner):
    offset = 41
    job = runner.submit("closure", lambda report, should_stop: offset + 1)
    assert job.wait(60) and job.result == 42


def test_stop_reaches_the_child(runner):
    job = runner.submit("long", loop_until_stopped)
    wait_for_first_event(job)
    job.cancel()
    assert job.wait(30) and job.status == "cancelled"


def test_a_failure_is_a_message_and_the_child_serves_on(runner):
    job = runner.submit("bad", divide_by_zero)
    assert job.wait(60) and job.status == "failed" and job.error == "ZeroDivisionError: division by zero"
    assert runner.submit("after", report_pid_and_env).wait(60)


def test_a_failed_cache_write_in_the_child_reaches_the_job(runner):
    job = runner.submit("unsaved", write_into_a_file)
    assert job.wait(60) and job.status == "done" and job.result is False
    assert job.unsaved == "File exists"   # the reason the write failed in the child


def test_a_killed_child_fails_its_job_and_the_next_job_gets_a_new_one(runner):
    job = runner.submit("killed", loop_until_stopped)
    wait_for_first_event(job)
    pid = job.events[0][1]
    os.kill(pid, signal.SIGKILL)
    assert job.wait(30) and job.status == "failed" and "ended unexpectedly" in job.error
    after = runner.submit("after-kill", report_pid_and_env)
    assert after.wait(60) and after.status == "done" and after.result["pid"] not in (pid, os.getpid())
