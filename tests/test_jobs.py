"""The job runner: equal keys share one job, Stop cancels, failures become messages."""

import threading

from kd_core.jobs import JobRunner
from kd_core.train import TrainingCancelled


def test_equal_keys_share_one_job():
    runner = JobRunner(workers=1)
    calls = []
    release = threading.Event()

    def work(report, should_stop):
        calls.append(1)
        report("started")
        release.wait(5)
        return 42

    first = runner.submit("cfg-a", work)
    second = runner.submit("cfg-a", work)
    assert first is second
    release.set()
    assert first.wait(5) and first.status == "done" and first.result == 42
    assert runner.submit("cfg-a", work).result == 42
    assert calls == [1] and first.events == ["started"]


def test_stop_cancels_cooperatively_and_can_rerun():
    runner = JobRunner(workers=1)
    started = threading.Event()

    def work(report, should_stop):
        started.set()
        while not should_stop():
            pass
        raise TrainingCancelled()

    job = runner.submit("long", work)
    assert started.wait(5)
    job.cancel()
    assert job.wait(5) and job.status == "cancelled"
    rerun = runner.submit("long", lambda report, should_stop: "again")
    assert rerun is not job and rerun.wait(5) and rerun.result == "again"


def test_failure_is_a_message():
    runner = JobRunner(workers=1)
    job = runner.submit("bad", lambda report, should_stop: 1 / 0)
    assert job.wait(5) and job.status == "failed" and "ZeroDivisionError" in job.error


def test_forget_drops_a_finished_job_so_it_runs_again():
    runner = JobRunner(workers=1)
    first = runner.submit("k", lambda report, stop: 1)
    assert first.wait(10)
    runner.forget("k")
    assert runner.get("k") is None
    second = runner.submit("k", lambda report, stop: 2)
    assert second is not first and second.wait(10) and second.result == 2


def test_a_session_may_have_two_runs_at_once_and_a_shared_run_stops_only_when_no_owner_wants_it():
    import pytest

    from kd_core.jobs import MAX_ACTIVE_PER_OWNER, SessionBusy

    runner = JobRunner(workers=1)
    release = threading.Event()

    def work(report, should_stop):
        while not release.is_set():
            if should_stop():
                raise TrainingCancelled()
            release.wait(0.01)
        return "done"

    first = runner.submit("a", work, owner="alice")
    second = runner.submit("b", work, owner="alice")
    assert MAX_ACTIVE_PER_OWNER == 2
    with pytest.raises(SessionBusy, match="2 runs waiting or running"):
        runner.submit("c", work, owner="alice")           # a third distinct run from one session: refused
    assert runner.get("c") is None
    assert runner.submit("a", work, owner="bob") is first  # another session joins the first run
    assert first.owners == {"alice", "bob"}
    assert runner.position("b") == 1 and runner.position("a") == 0  # b waits behind a
    assert not runner.release("a", "carol")                # not an owner: nothing happens
    assert not runner.release("a", "alice") and not first._cancel.is_set()  # bob still wants it
    assert runner.release("a", "bob")                      # the last owner lets go: cancelled
    assert first.wait(5) and first.status == "cancelled"
    assert runner.submit("c", work, owner="alice").owners == {"alice"}  # room again for alice
    release.set()
    assert second.wait(5) and second.status == "done"
