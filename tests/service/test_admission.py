"""``service.admission``: the work lane's cap, queue bound and deadlines, the gate, the Retry-After
estimate, and the estimate of a heavy job's time by which the lane refuses work that cannot finish.

Time is a ``ManualClock`` (``service.clock``): the lane reads it, its timers run on an event loop that
keeps it, and a job "takes" d seconds by advancing it by d. Jobs that must still be running block on
an event the test sets. Heavy work on a live service is in ``test_heavy_work.py``.
"""

import asyncio
import threading

import pytest

from service.admission import (
    AdmissionGate,
    LoadEstimate,
    WorkLane,
    check_deadline,
    remaining_s,
    request_deadline,
)
from service.batching import QueueFullError, RequestTimeoutError
from service.clock import ManualClock
from tests.service.conftest import blocking_event


def _lane(clock: ManualClock, **overrides) -> WorkLane:
    options = dict(max_concurrency=2, max_queue_length=8)
    options.update(overrides)
    return WorkLane("test lane", clock=clock, **options)


async def _turns(n: int = 10) -> None:
    """Let the event loop run what is due (timers at the clock's time, and what they wake) n times."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_the_lane_never_runs_more_than_its_cap():
    clock = ManualClock()
    running, peak = 0, 0
    lock = threading.Lock()
    go = blocking_event()

    def job(i):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        clock.notify()
        assert go.wait(60)
        with lock:
            running -= 1
        return i

    async def scenario():
        lane = _lane(clock, max_concurrency=2, max_queue_length=8)
        jobs = [asyncio.ensure_future(lane.run(job, i)) for i in range(8)]
        await _turns()
        clock.until(lambda: running == 2)
        state = (lane.running, lane.queue_depth)
        go.set()
        results = await asyncio.gather(*jobs)
        await lane.close()
        return state, results

    state, results = clock.run(scenario())
    assert state == (2, 6)
    assert results == list(range(8))                      # FIFO results, each its own
    assert peak == 2


def test_a_full_lane_queue_raises_queue_full_with_retry_after():
    clock = ManualClock()
    release = blocking_event()

    async def scenario():
        lane = _lane(clock, max_concurrency=1, max_queue_length=1, retry_after=lambda: 7)
        first = asyncio.ensure_future(lane.run(release.wait))
        await _turns()
        second = asyncio.ensure_future(lane.run(lambda: "queued"))
        await _turns()
        with pytest.raises(QueueFullError) as err:
            await lane.run(lambda: "refused")
        release.set()
        assert await second == "queued"
        await first
        await lane.close()
        return err.value

    err = clock.run(scenario())
    assert err.retry_after_s == 7 and "jobs queued (the limit is 1)" in str(err)


def test_work_whose_deadline_passed_while_queued_is_never_started():
    clock = ManualClock()
    release = blocking_event()
    started = []

    async def scenario():
        lane = _lane(clock, max_concurrency=1)
        first = asyncio.ensure_future(lane.run(release.wait))
        await _turns()
        late = asyncio.ensure_future(lane.run(started.append, "late", deadline=clock.now() + 0.1))
        clock.advance(0.099)
        await _turns()
        assert not late.done()
        clock.advance(0.001)
        with pytest.raises(RequestTimeoutError):
            await late
        release.set()
        await first
        after = await lane.run(lambda: "next")          # the slot was not lost
        await lane.close()
        return after

    assert clock.run(scenario()) == "next"
    assert started == []


def test_a_running_job_past_its_deadline_answers_at_the_deadline_and_keeps_its_slot():
    clock = ManualClock()
    release = blocking_event()

    async def scenario():
        lane = _lane(clock, max_concurrency=1)
        job = asyncio.ensure_future(lane.run(release.wait, deadline=clock.now() + 0.1))
        await _turns()
        clock.advance(0.099)
        await _turns()
        assert not job.done() and lane.running == 1
        clock.advance(0.001)
        with pytest.raises(RequestTimeoutError):
            await job
        held = lane.running                            # the thread still works: its slot is held
        release.set()
        await lane.close()                             # waits until the job has returned its slot
        return held, lane.running

    assert clock.run(scenario()) == (1, 0)


def test_the_request_deadline_context_variable_is_the_default():
    clock = ManualClock()

    async def scenario():
        lane = _lane(clock)
        request_deadline.set(clock.now() - 1.0)      # already passed
        called = []
        with pytest.raises(RequestTimeoutError):
            await lane.run(called.append, 1)
        await lane.close()
        return called

    assert clock.run(scenario()) == []


def test_deadlines_are_read_from_the_given_clock():
    clock = ManualClock(start=10.0)
    assert remaining_s(None, clock.now) is None and remaining_s(12.5, clock.now) == 2.5
    check_deadline(10.5, "the job", clock.now)           # not yet
    clock.advance(0.5)
    with pytest.raises(RequestTimeoutError, match="the job did not finish within request_timeout_s"):
        check_deadline(10.5, "the job", clock.now)
    check_deadline(None, "the job", clock.now)           # no deadline: never


def test_the_gate_admits_up_to_its_limit():
    gate = AdmissionGate(2)
    assert gate.try_enter() and gate.try_enter() and not gate.try_enter()
    assert gate.inflight == 2                              # the refused request is not counted
    gate.leave()
    assert gate.inflight == 1
    assert gate.try_enter() and gate.inflight == 2


def test_retry_after_is_queue_depth_times_recent_time_per_row():
    load = LoadEstimate(alpha=0.5)
    assert load.retry_after_s(1000, 0, 1) == 1              # nothing observed yet: at least 1 s
    load.observe_batch(rows=10, seconds=0.1)               # 10 ms per row
    assert load.retry_after_s(450, 0, 1) == 5               # 450 rows × 10 ms = 4.5 s → 5
    load.observe_batch(rows=10, seconds=0.3)               # EWMA: 0.5·10 + 0.5·30 = 20 ms per row
    assert load.retry_after_s(450, 0, 1) == 9
    assert load.retry_after_s(0, 12.0, 2) == 6              # 12 s of heavy work ahead / 2 slots


def test_heavy_job_estimates_are_per_kind_and_follow_a_fixed_plus_per_unit_line():
    load = LoadEstimate(alpha=0.5, deviations=0.0)           # the line alone
    assert load.job_seconds("physics reference", 100) == 0.0           # not seen yet: no guess
    load.observe_job("physics reference", work=16 * 290, seconds=9.28)
    load.observe_job("stability report of cifar10", work=1, seconds=6.0)
    # one size seen: its time, for any job up to twice that size, and no guess beyond
    assert load.job_seconds("physics reference", 1 * 29) == pytest.approx(9.28)
    assert load.job_seconds("physics reference", 2 * 16 * 290) == pytest.approx(9.28)
    assert load.job_seconds("physics reference", 2 * 16 * 290 + 1) == 0.0
    assert load.job_seconds("stability report of cifar10", 1) == 6.0
    assert load.job_seconds("stability report of pendulum", 1) == 0.0   # another model: its own kind
    # two sizes: the line through both points (equal weights at alpha ½)
    load.observe_job("physics reference", work=10, seconds=0.06)
    slope = (9.28 - 0.06) / (4640 - 10)
    assert load.job_seconds("physics reference", 1000) == pytest.approx(0.06 + slope * 990)


def test_small_jobs_fixed_cost_does_not_inflate_the_estimate_of_a_large_one():
    """Many small physics references (60 ms fixed + 1 ms per state-step), then one of 4 × 290. The
    time per unit with twice its deviation, 1 160 × (1.87 ms + 2 × 0.79 ms), would say 4.0 s; the line
    says 0.06 + 1.16 s."""
    load = LoadEstimate(deviations=0.0)
    for work in [29, 58, 116, 29, 600, 290, 58, 116, 29, 464] * 3:
        load.observe_job("physics reference", work=work, seconds=0.06 + 0.001 * work)
    assert load.job_seconds("physics reference", 4 * 290) == pytest.approx(0.06 + 1.16, rel=1e-6)
    assert load.job_seconds("physics reference", 1) == pytest.approx(0.061, rel=1e-6)
    assert load.job_seconds("physics reference", 2 * 600 + 1) == 0.0    # too far out: no guess


def test_the_line_never_goes_below_zero_cost_or_slopes_down():
    load = LoadEstimate(alpha=0.5, deviations=0.0)
    load.observe_job("report", work=1, seconds=1.0)
    load.observe_job("report", work=2, seconds=4.0)     # the line through both has a = −2: through 0
    assert load.job_seconds("report", 1) == pytest.approx(2.5 / 1.5)
    load = LoadEstimate(alpha=0.5, deviations=0.0)
    load.observe_job("report", work=1, seconds=3.0)
    load.observe_job("report", work=2, seconds=1.0)     # bigger and faster (noise): a constant
    assert load.job_seconds("report", 4) == pytest.approx(2.0)


def test_the_estimate_adds_twice_the_mean_relative_deviation_as_rfc_6298_does():
    """r as TCP's RTTVAR (RFC 6298 §2, α = ½ here), relative to the line: the first sample gives r = ½;
    then r ← ½r + ½|x − line(u)| / line(u), with the line before x joins it; ŝ = line(u)·(1 + 2r)."""
    load = LoadEstimate(alpha=0.5)
    load.observe_job("report", work=1, seconds=2.0)          # line 2, r ½
    assert load.job_seconds("report", 1) == pytest.approx(2.0 * (1 + 2 * 0.5))
    load.observe_job("report", work=1, seconds=6.0)          # |6 − 2| / 2 = 2: r ½·½ + ½·2 = 1.25, line 4
    assert load.job_seconds("report", 1) == pytest.approx(4.0 * (1 + 2 * 1.25))
    for _ in range(40):                                        # steady times: r → 0, ŝ → the line
        load.observe_job("report", work=1, seconds=4.0)
    assert load.job_seconds("report", 1) == pytest.approx(4.0, rel=1e-6)


# -- admission by the estimate ----------------------------------------------------------------------
def test_a_job_that_cannot_finish_before_its_deadline_is_refused_at_once():
    """With 0.5 s per job, one running (just started) and one waiting, a third job with 0.8 s left
    would finish in (0.5 + 0.5) / 1 + 0.5 = 1.5 s: refused at once (503 + Retry-After), before the
    clock moves, not queued to time out; with 5 s left it queues and runs."""
    clock = ManualClock()
    release = blocking_event()

    async def scenario():
        lane = _lane(clock, max_concurrency=1, max_queue_length=8, retry_after=lambda: 3,
                     job_seconds=lambda kind, work: 0.5 * work)
        first = asyncio.ensure_future(lane.run(release.wait))
        await _turns()
        second = asyncio.ensure_future(lane.run(lambda: "second", deadline=clock.now() + 60))
        await _turns()
        late = asyncio.ensure_future(lane.run(lambda: "late", deadline=clock.now() + 0.8))
        await asyncio.sleep(0)                               # one turn: its first step
        assert late.done()
        third = asyncio.ensure_future(lane.run(lambda: "third", deadline=clock.now() + 5))
        await _turns()
        release.set()
        results = (await first, await second, await third)
        await lane.close()
        return late.exception(), results

    err, results = clock.run(scenario())
    assert isinstance(err, QueueFullError) and err.retry_after_s == 3
    assert "finish in about 1.5 s" in str(err) and "1 waiting" in str(err)
    assert results == (True, "second", "third")


def test_a_small_job_is_admitted_where_a_large_one_of_the_same_kind_is_refused():
    """One unit of work costs 0.1 s; a 1-unit job is running. With 1 s left, a 2-unit job (about
    0.1 + 0.2 s) queues and runs, a 30-unit job (about 0.1 + 3 s) is refused at once: one average per
    job would have treated both alike. The backlog counts what is left of the running job."""
    clock = ManualClock()
    release = blocking_event()

    async def scenario():
        lane = _lane(clock, max_concurrency=1, max_queue_length=8,
                     job_seconds=lambda kind, work: 0.1 * work)
        first = asyncio.ensure_future(lane.run(release.wait, kind="reference", work=1))
        await _turns()
        small = asyncio.ensure_future(lane.run(lambda: "small", kind="reference", work=2,
                                               deadline=clock.now() + 1.0))
        await _turns()
        backlogs = [lane.backlog_s]                  # 0.2 waiting + 0.1 left of the running job
        clock.advance(0.04)
        backlogs.append(lane.backlog_s)              # 0.2 + 0.06
        clock.advance(0.5)
        backlogs.append(lane.backlog_s)              # running past its estimate: nothing left of it
        with pytest.raises(QueueFullError) as err:
            await lane.run(lambda: "large", kind="reference", work=30, deadline=clock.now() + 1.0)
        release.set()
        results = (await first, await small)
        await lane.close()
        return err.value, backlogs, results

    err, backlogs, results = clock.run(scenario())
    assert backlogs == pytest.approx([0.3, 0.26, 0.2])
    assert "this reference job" in str(err) and "about 3.0 s its own" in str(err)
    assert results == (True, "small")


def test_a_waiting_job_is_refused_when_only_its_own_time_is_left_and_its_slot_goes_on():
    """A 0.3-s job admitted behind one that then runs long: with 0.6 s left it is refused (503) once
    only its 0.3 s are left, at 0.3 s, not at its deadline with a 504, and it never runs; the job
    behind it, with time to spare, gets the slot."""
    clock = ManualClock()
    release = blocking_event()
    started = []

    async def scenario():
        lane = _lane(clock, max_concurrency=1, max_queue_length=8, retry_after=lambda: 2,
                     job_seconds=lambda kind, work: 0.3 * work if kind == "timed" else 0.0)
        first = asyncio.ensure_future(lane.run(release.wait))          # unknown kind: estimate 0
        await _turns()
        t0 = clock.now()
        doomed = asyncio.ensure_future(lane.run(started.append, "doomed", kind="timed",
                                                deadline=t0 + 0.6))
        spare = asyncio.ensure_future(lane.run(started.append, "spare", kind="timed",
                                               deadline=t0 + 30))
        await _turns()
        clock.advance(0.299)
        await _turns()
        assert not doomed.done()
        clock.advance(0.001)
        with pytest.raises(QueueFullError) as err:
            await doomed
        release.set()
        await first
        await spare
        await lane.close()
        return err.value

    err = clock.run(scenario())
    assert err.retry_after_s == 2 and "still waiting for a slot" in str(err)
    assert started == ["spare"]


def test_the_lane_reports_each_job_by_kind_and_size():
    clock = ManualClock()
    seen = []

    async def scenario():
        lane = _lane(clock, max_concurrency=1, max_queue_length=2,
                     on_job=lambda kind, work, seconds: seen.append((kind, work, seconds)))
        await lane.run(clock.advance, 0.05, kind="physics reference", work=4 * 29)
        await lane.close()

    clock.run(scenario())
    assert seen == [("physics reference", 116, pytest.approx(0.05))]


def test_only_jobs_that_completed_or_were_stopped_at_their_deadline_feed_the_estimate():
    """A job that fails on its input (a 422 raised a few ms into a stability report) says nothing of
    what its kind costs: fed to the estimate, it would pull it down and let long jobs in late. A job
    that its own deadline check stopped ran at least as long as it was measured: that lower bound can
    only raise the estimate that let it start too late, so it is fed."""
    clock = ManualClock()
    seen = []

    def bad_input():
        clock.advance(0.01)
        raise ValueError("pixels: not an image")

    async def scenario():
        lane = _lane(clock, max_concurrency=1,
                     on_job=lambda kind, work, seconds: seen.append((kind, seconds)))
        await lane.run(clock.advance, 0.02, kind="completed")
        with pytest.raises(ValueError):
            await lane.run(bad_input, kind="failed on its input")
        deadline = clock.now() + 0.0625

        def stopped_at_its_deadline():
            while True:                                # a step-by-step loop with a deadline check
                clock.advance(0.015625)
                check_deadline(deadline, "the test job", clock.now)

        with pytest.raises(RequestTimeoutError):
            await lane.run(stopped_at_its_deadline, kind="stopped at its deadline", deadline=deadline)
        await lane.close(drain_timeout_s=5)

    clock.run(scenario())
    assert seen == [("completed", pytest.approx(0.02)), ("stopped at its deadline", 0.0625)]


def test_a_job_with_a_free_slot_is_refused_when_its_request_has_less_time_left_than_it_takes():
    """Nothing runs, so the job would start at once; but its request has 0.2 s left (it spent the rest
    before reaching the lane) and such jobs take 0.5 s: 503 at once instead of a 504 at the deadline.
    With 5 s left the same job runs."""
    clock = ManualClock()
    ran = []

    async def scenario():
        lane = _lane(clock, max_concurrency=1, retry_after=lambda: 4,
                     job_seconds=lambda kind, work: 0.5 * work)
        with pytest.raises(QueueFullError) as err:
            await lane.run(ran.append, "late", kind="reference", deadline=clock.now() + 0.2)
        assert lane.running == 0                      # the refused job never held the slot
        await lane.run(ran.append, "in time", kind="reference", deadline=clock.now() + 5)
        await lane.close()
        return err.value

    err = clock.run(scenario())
    assert err.retry_after_s == 4 and "takes about 0.5 s" in str(err)
    assert ran == ["in time"]


def test_an_idle_lane_admits_a_large_job_after_small_ones_whose_cost_is_mostly_fixed():
    """One- and two-state references (29 and 58 state-steps, 50 ms each, nearly all of it fixed): a
    time per unit (1.44 ms, deviation 0.72 ms) would refuse a 4-state × 290-step reference (1 160
    units) on an idle lane as "about 3.4 s", here with 1 s left. The line estimates small jobs at their
    time, and a job 20× the largest size seen is not refused on a guess: it runs."""
    clock = ManualClock()
    load = LoadEstimate()
    ran = []

    async def scenario():
        lane = _lane(clock, max_concurrency=1, job_seconds=load.job_seconds, on_job=load.observe_job)
        for work in (29, 58, 29, 58):
            await lane.run(clock.advance, 0.05, kind="reference", work=work)
        small = load.job_seconds("reference", 58)
        await lane.run(ran.append, "large", kind="reference", work=4 * 290, deadline=clock.now() + 1.0)
        await lane.close()
        return small

    small = clock.run(scenario())
    # all four took 50 ms: the line is flat at 50 ms, and r = ½ × (1 − 0.2)³ after three exact times
    assert small == pytest.approx(0.05 * (1 + 2 * 0.5 * 0.8 ** 3))
    assert ran == ["large"]


def test_jobs_that_queued_with_no_estimate_are_rejudged_when_the_first_of_their_kind_finishes():
    """Three jobs of a kind never seen, one slot: the second has 0.5 s. It queues with no estimate (it
    would otherwise be dropped, or started and cut off, at its deadline: a 504). The first finishes
    after 0.3 s and teaches the estimate (0.3 s): the second, with 0.2 s left, is refused at once
    (503), and the third, with time to spare, runs."""
    clock = ManualClock()
    load = LoadEstimate(deviations=0.0)
    go = blocking_event()
    ran = []

    def first_job():
        assert go.wait(60)
        clock.advance(0.3)

    async def scenario():
        lane = _lane(clock, max_concurrency=1, max_queue_length=8, retry_after=lambda: 2,
                     job_seconds=load.job_seconds, on_job=load.observe_job)
        t0 = clock.now()
        first = asyncio.ensure_future(lane.run(first_job, kind="reference"))
        await _turns()
        second = asyncio.ensure_future(lane.run(ran.append, "second", kind="reference", deadline=t0 + 0.5))
        third = asyncio.ensure_future(lane.run(ran.append, "third", kind="reference", deadline=t0 + 10))
        await _turns()
        go.set()
        await first
        with pytest.raises(QueueFullError) as err:
            await second
        refused_at = clock.now() - t0
        await third
        await lane.close()
        return err.value, refused_at

    err, refused_at = clock.run(scenario())
    assert refused_at == pytest.approx(0.3) and err.retry_after_s == 2
    assert "takes about 0.3 s" in str(err)
    assert ran == ["third"]
