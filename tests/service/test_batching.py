"""The dynamic batcher without HTTP: each concurrent caller gets its own answer, batches respect the
size limit, the adaptive window holds a batch open only when the rule says so, overload and timeouts
fail fast, failures are isolated, and close() drains the queue.

Time is a ``ManualClock`` (``service.clock``): a forward pass "takes" its cost by advancing the clock,
a held batch waits until the test advances it, and request timeouts fire on the event loop's manual
time. Which thread did what is synchronised by the clock's ``until``, never by sleeping.
"""

import asyncio
import threading

import numpy as np
import pytest
import torch

from artifact.manifest import Manifest
from model import paper_model
from service.batching import (
    BatcherClosedError,
    DynamicBatcher,
    QueueFullError,
    RequestTimeoutError,
    fixed_cost_s,
    hold_window_s,
    median_spacing_s,
)
from service.clock import ManualClock
from service.tasks import ClassifierAPI, ClassifyJob
from tests.service.conftest import blocking_event

torch.set_num_threads(1)




class Forward:
    """run_batch for tests: doubles each payload and records the batches; each call takes
    ``fixed_s + per_row_s × rows`` of the clock (a list payload is one row per item, anything else one
    row); ``pause()`` makes the next calls wait (in the model's thread) until ``resume()``; a "poison"
    payload fails its batch."""

    def __init__(self, clock: ManualClock, fixed_s: float = 0.0, per_row_s: float = 0.0):
        self.clock, self.fixed_s, self.per_row_s = clock, fixed_s, per_row_s
        self.batches: list[list] = []
        self.threads: set[str] = set()
        self._open = blocking_event()
        self._open.set()

    def pause(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def __call__(self, payloads: list) -> list:
        self.batches.append(list(payloads))
        self.threads.add(threading.current_thread().name)
        assert torch.is_inference_mode_enabled()
        self.clock.notify()                          # a batch has started: wake ``until``
        assert self._open.wait(60), "the test never resumed the forward"
        rows = sum(len(p) if isinstance(p, list) else 1 for p in payloads)
        self.clock.advance(self.fixed_s + self.per_row_s * rows)
        if any(p == "poison" for p in payloads):
            raise ValueError("poisoned batch")
        return [p * 2 for p in payloads]


def make(run, clock: ManualClock, **overrides) -> DynamicBatcher:
    options = dict(max_batch_size=8, max_queue_delay_s=0.0, max_queue_length=64, request_timeout_s=5.0)
    options.update(overrides)
    batcher = DynamicBatcher("test", run, clock=clock, **options)
    batcher.start()
    return batcher


async def _submitted(*submissions) -> list[asyncio.Future]:
    """Start ``batcher.submit(...)`` coroutines and return once each is queued (one turn of the loop)."""
    tasks = [asyncio.ensure_future(s) for s in submissions]
    await asyncio.sleep(0)
    return tasks


async def _turns(n: int = 10) -> None:
    """Let the event loop run what is due (timers at the clock's time, and what they wake) n times."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_concurrent_callers_each_get_their_own_answer():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.02)
        run.pause()                                  # the first batch waits until all 20 are queued
        batcher = make(run, clock, max_batch_size=8)
        pending = await _submitted(*(batcher.submit(i) for i in range(20)))
        run.resume()
        results = await asyncio.gather(*pending)
        await batcher.close()
        return run, results

    run, results = clock.run(scenario())
    assert [r.value for r in results] == [2 * i for i in range(20)]
    assert all(len(b) <= 8 for b in run.batches)
    assert max(len(b) for b in run.batches) > 1, f"nothing was batched: {run.batches}"
    assert sum(len(b) for b in run.batches) == 20
    assert not any(name == threading.main_thread().name for name in run.threads)   # off the event loop
    assert all(r.batch_rows >= 1 and r.inference_s == pytest.approx(0.02) and r.queue_wait_s >= 0
               for r in results)


def test_rows_count_toward_the_batch_limit_and_an_oversized_request_runs_alone():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock)
        run.pause()
        batcher = make(run, clock, max_batch_size=4)
        first, = await _submitted(batcher.submit(100, rows=1))
        clock.until(lambda: len(run.batches) == 1)             # 100 occupies the model's thread
        rest = await _submitted(batcher.submit(1, rows=3), batcher.submit(2, rows=3),
                                batcher.submit(3, rows=9))
        run.resume()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return run, results

    run, results = clock.run(scenario())
    assert [r.value for r in results] == [200, 2, 4, 6]
    assert run.batches == [[100], [1], [2], [3]]           # 3 + 3 > 4, and the 9-row request alone
    assert results[3].batch_rows == 9


def test_the_model_thread_takes_the_next_batch_while_the_event_loop_is_busy():
    """Queued requests keep the model's thread busy without a turn of the event loop between batches:
    with the loop blocked (not awaiting) until the third batch starts, all three one-row batches run."""
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.03)
        batcher = make(run, clock, max_batch_size=1)
        pending = await _submitted(*(batcher.submit(i) for i in range(3)))
        clock.until(lambda: len(run.batches) == 3)  # blocks the event loop: the batches run meanwhile
        results = await asyncio.gather(*pending)
        await batcher.close()
        return [r.value for r in results]

    assert clock.run(scenario()) == [0, 2, 4]


# -- the adaptive window -----------------------------------------------------------------------------
async def _answer(batcher: DynamicBatcher, clock: ManualClock, run: Forward, payload):
    """Submit one request and wait until the model's thread runs it or holds it open; a held batch is
    released by advancing the clock past any window. Returns (its result, whether it was held) once
    the model's thread is idle again, so that the next request finds it idle (a request submitted
    while it is still finishing its job counts as one that arrived while it was busy)."""
    calls = len(run.batches)
    future, = await _submitted(batcher.submit(payload, rows=len(payload) if isinstance(payload, list) else 1))
    clock.until(lambda: len(run.batches) > calls or clock.sleeping > 0)
    held = clock.sleeping > 0
    if held:
        clock.advance(batcher.max_queue_delay_s)
    result = await future
    await batcher._idle.wait()
    return result, held


async def _measure_two_sizes(batcher, clock, run) -> None:
    """One batch of 1 row and one of 2, so that the batcher has a line through its forward times."""
    await _answer(batcher, clock, run, 0)
    await _answer(batcher, clock, run, [0, 0])
    run.batches.clear()


def test_a_lone_client_is_never_held_open():
    """One request at a time: the recent peak is one row, so the window adds nothing to its latency,
    although the forward's fixed cost would make waiting worth it. (The first request may be held: the
    request before it, from the same client, had two rows.)"""
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.05, per_row_s=0.001)
        batcher = make(run, clock, max_queue_delay_s=0.5)
        await _measure_two_sizes(batcher, clock, run)
        answers = [await _answer(batcher, clock, run, i) for i in range(4)]
        await batcher.close()
        return run.batches, answers

    batches, answers = clock.run(scenario())
    assert batches == [[0], [1], [2], [3]]
    assert [held for _, held in answers[1:]] == [False] * 3
    assert [result.queue_wait_s for result, _ in answers[1:]] == [0.0] * 3


def _returning_rows(run_costs: tuple[float, float], sizes_measured: int = 2, **options):
    """A batcher measures its forward at 1 and 2 rows (``sizes_measured`` = 2; with 1, no size but the
    next), then serves one request of four rows (the peak of rows outstanding). Then one request
    arrives, and three more 30 ms later (closed-loop clients coming back at different times). Returns
    the batches of that last part, the first's result, and whether the model's thread held it open."""
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, *run_costs)
        batcher = make(run, clock, **options)
        if sizes_measured == 2:
            await _measure_two_sizes(batcher, clock, run)
        await _answer(batcher, clock, run, [0] * 4)
        run.batches.clear()
        first, = await _submitted(batcher.submit(10))
        clock.until(lambda: len(run.batches) == 1 or clock.sleeping > 0)
        held = clock.sleeping > 0
        if not held:             # it runs alone: the rows below find the model's thread idle
            await first
            await batcher._idle.wait()
        clock.advance(0.03)
        late = await asyncio.gather(*(batcher.submit(i) for i in (11, 12, 13)))
        result = await first
        await batcher.close()
        assert result.value == 20 and [r.value for r in late] == [22, 24, 26]
        return run.batches, result, held

    return clock.run(scenario())


def test_a_batch_is_held_open_for_returning_rows_when_the_forward_has_a_fixed_cost():
    """A 60-ms fixed cost per forward: waiting 30 ms for three rows saves one. The first request waits
    for them; with max_queue_delay_s = 0 it runs alone."""
    batches, first, held = _returning_rows((0.06, 0.001), max_queue_delay_s=0.5)
    assert held and batches[0] == [10, 11, 12, 13], batches
    assert first.queue_wait_s == pytest.approx(0.03)
    batches, first, held = _returning_rows((0.06, 0.001), max_queue_delay_s=0.0)
    assert not held and batches[0] == [10] and first.queue_wait_s == 0.0


def test_a_hold_is_tried_when_only_one_batch_size_was_measured():
    """Traffic that settles into equal half batches measures one size only, and no line: the cheapest
    measured time bounds the fixed cost, so the window is tried (and then measures a second size)."""
    batches, first, held = _returning_rows((0.06, 0.001), sizes_measured=1, max_queue_delay_s=0.5)
    assert held and batches[0] == [10, 11, 12, 13], batches
    assert first.queue_wait_s == pytest.approx(0.03)


@pytest.mark.parametrize("fixed_s, per_row_s, max_batch_size", [
    # no fixed cost: one batch of four costs what four batches of one do (binary-exact costs, so that
    # the measured line's fixed cost is exactly 0, not a rounding error above it)
    (0.0, 1 / 128, 8),
    (0.06, 0.001, 2)])    # four rows outstanding and batches of two: the returning rows make a batch anyway
def test_the_first_request_runs_at_once_when_waiting_cannot_pay(fixed_s, per_row_s, max_batch_size):
    batches, first, held = _returning_rows((fixed_s, per_row_s), max_batch_size=max_batch_size,
                                           max_queue_delay_s=0.5)
    assert not held and batches[0] == [10], batches
    assert first.queue_wait_s == 0.0


def test_the_hold_rule_weighs_the_returning_rows_pace_against_the_fixed_cost():
    """The rule itself, on given measurements: f(n) = 60 ms + 1 ms·n, so a = 60 ms. Four rows whose
    requests come 1 ms apart are worth holding for (4 ms < 60 ms); 30 ms apart they are not (120 ms);
    a few long gaps (the pauses between bursts) do not move the median; more rows than a batch holds,
    or a batch already complete, are never held."""
    forward_s = {1: 0.061, 2: 0.062, 8: 0.068}
    assert fixed_cost_s(forward_s) == pytest.approx(0.060)
    assert fixed_cost_s({}) == 0.0
    assert fixed_cost_s({4: 0.064}) == 0.064                  # one size: its time bounds a
    assert fixed_cost_s({1: 0.01, 2: 0.05}) == 0.0            # a line through below 0: no fixed cost
    assert fixed_cost_s({1: 0.05, 2: 0.01}) == 0.01           # a falling line: the cheapest time

    def hold(rows, expected, gaps, delay_s=0.5, max_batch_size=8, forward=forward_s):
        return hold_window_s(rows, expected, max_batch_size=max_batch_size, max_queue_delay_s=delay_s,
                             fixed_cost_s=fixed_cost_s(forward), spacing_s=median_spacing_s(gaps))

    assert median_spacing_s([]) == 0.0 and median_spacing_s([0.001] * 5 + [0.05] * 2) == 0.001
    assert hold(1, 4, [0.001] * 5) == pytest.approx(0.060)
    assert hold(1, 4, [0.001] * 5 + [0.05, 0.05]) == pytest.approx(0.060)
    assert hold(1, 9, [0.001] * 5) == 0.0 and hold(4, 4, [0.001] * 5) == 0.0
    assert hold(1, 4, [0.03] * 5) == 0.0
    # at the boundary (binary-exact values): P·s = a does not pay, a hair less does
    exact = dict(max_batch_size=8, max_queue_delay_s=0.5, fixed_cost_s=0.0625)
    assert hold_window_s(1, 4, spacing_s=0.015625, **exact) == 0.0
    assert hold_window_s(1, 4, spacing_s=0.015624, **exact) == 0.0625
    assert hold_window_s(1, 8, spacing_s=0.0, **exact) == 0.0625          # P = max_batch_size fits
    assert hold(1, 4, [0.001] * 5, delay_s=0.02) == pytest.approx(0.02)
    assert hold(1, 4, [0.001] * 5, delay_s=0.0) == 0.0
    # the batcher applies the same rule to what it measured itself
    batcher = DynamicBatcher("test", Forward(ManualClock()), max_batch_size=8, max_queue_delay_s=0.5,
                             max_queue_length=64, request_timeout_s=5.0)
    batcher._forward_s.update(forward_s)
    batcher._arrival_gaps.extend([0.001] * 5)
    assert batcher._hold_s(1, 4) == pytest.approx(0.060) and batcher._hold_s(1, 9) == 0.0


def test_a_held_batch_runs_at_its_deadline_and_the_window_follows_the_traffic_down():
    """After four rows outstanding at once, a lone request is held for min(fixed cost,
    max_queue_delay_s) (the others do not come back): not a moment less, and the cap, not the fixed
    cost; and the next lone one is not held: the peak is measured again from batch to batch."""
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.3, per_row_s=0.001)
        batcher = make(run, clock, max_queue_delay_s=0.06)
        await _measure_two_sizes(batcher, clock, run)
        await _answer(batcher, clock, run, [0] * 4)
        run.batches.clear()
        held, = await _submitted(batcher.submit(10))
        clock.until(lambda: clock.waits == 1 and clock.sleeping == 1)
        clock.advance(0.059)                                   # not yet: the batch is held again
        clock.until(lambda: clock.waits == 2 and clock.sleeping == 1)
        assert run.batches == []
        clock.advance(0.001)
        held = await held
        await batcher._idle.wait()
        lone = await _answer(batcher, clock, run, 11)
        await batcher.close()
        return run.batches, held, lone

    batches, held, (lone, lone_held) = clock.run(scenario())
    assert batches == [[10], [11]]
    assert held.value == 20 and held.queue_wait_s == pytest.approx(0.06)     # the cap, not 0.3
    assert lone.value == 22 and not lone_held and lone.queue_wait_s == 0.0


# -- overload, timeouts, failures, shutdown ----------------------------------------------------------
def test_full_queue_is_refused_at_once_with_a_retry_hint():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.1)
        run.pause()
        batcher = make(run, clock, max_batch_size=1, max_queue_length=2)
        busy, = await _submitted(batcher.submit(0))
        clock.until(lambda: len(run.batches) == 1)             # 0 is in the forward pass
        queued = await _submitted(batcher.submit(1), batcher.submit(2))
        with pytest.raises(QueueFullError, match="max_queue_length = 2") as refused:
            await batcher.submit(3)
        run.resume()
        results = await asyncio.gather(busy, *queued)
        await batcher.close()
        return refused.value, results

    error, results = clock.run(scenario())
    assert error.retry_after_s >= 1
    assert [r.value for r in results] == [0, 2, 4]


def test_timeout_raises_and_drops_the_request_from_the_queue():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.2)
        run.pause()
        batcher = make(run, clock, max_batch_size=1, request_timeout_s=0.05)
        busy, = await _submitted(batcher.submit(0))
        clock.until(lambda: len(run.batches) == 1)
        queued, = await _submitted(batcher.submit(1))           # waits behind 0
        clock.advance(0.049)
        await _turns()
        assert not queued.done() and not busy.done()
        clock.advance(0.001)
        with pytest.raises(RequestTimeoutError, match="request_timeout_s = 0.05"):
            await queued                                        # timed out while queued
        depth = batcher.queue_depth
        with pytest.raises(RequestTimeoutError):
            await busy                                          # its forward outlives the timeout
        run.resume()
        await batcher.close()
        return run.batches, depth

    batches, depth = clock.run(scenario())
    assert depth == 0
    assert batches == [[0]]                                     # the timed-out request never ran


def test_a_request_whose_deadline_has_passed_is_not_queued():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock)
        batcher = make(run, clock)
        with pytest.raises(RequestTimeoutError, match="passed before it was queued"):
            await batcher.submit(1, deadline=clock.now())
        result = await batcher.submit(2, deadline=clock.now() + 1.0)
        await batcher.close()
        return run.batches, result.value

    assert clock.run(scenario()) == ([[2]], 4)


def test_a_cancelled_caller_is_dropped_from_the_queue_and_the_others_are_served():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.1)
        run.pause()
        batcher = make(run, clock, max_batch_size=1, request_timeout_s=0.5)
        busy, = await _submitted(batcher.submit(0))
        clock.until(lambda: len(run.batches) == 1)
        gone, kept = await _submitted(batcher.submit(1), batcher.submit(2))    # queued behind 0
        gone.cancel()                                           # the client went away
        with pytest.raises(asyncio.CancelledError):
            await gone
        depth = batcher.queue_depth
        run.resume()
        results = await asyncio.gather(busy, kept)
        clock.advance(0.6)                                      # past every timer: none fires late
        await _turns()
        await batcher.close()
        return run.batches, depth, [r.value for r in results]

    batches, depth, values = clock.run(scenario())
    assert depth == 1                                           # only 2 still waits
    assert values == [0, 4]
    assert batches == [[0], [2]]                                # the cancelled request never ran


def test_a_failing_request_does_not_fail_its_batch_neighbours():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.02)
        run.pause()
        batcher = make(run, clock)
        busy, = await _submitted(batcher.submit(0))
        clock.until(lambda: len(run.batches) == 1)
        neighbours = await _submitted(batcher.submit(1), batcher.submit("poison"), batcher.submit(3))
        run.resume()
        outcomes = await asyncio.gather(*neighbours, return_exceptions=True)
        await busy
        await batcher.close()
        return run.batches, outcomes

    batches, outcomes = clock.run(scenario())
    assert batches == [[0], [1, "poison", 3], [1], ["poison"], [3]]   # batched, then retried alone
    assert outcomes[0].value == 2 and outcomes[2].value == 6
    assert isinstance(outcomes[1], ValueError)


def test_close_drains_the_queue_then_refuses_new_requests():
    clock = ManualClock()

    async def scenario():
        run = Forward(clock, fixed_s=0.02)
        batcher = make(run, clock, max_batch_size=2)
        pending = await _submitted(*(batcher.submit(i) for i in range(6)))
        await batcher.close(drain_timeout_s=5)
        with pytest.raises(BatcherClosedError):
            await batcher.submit(99)
        return [p.result().value for p in pending]

    assert clock.run(scenario()) == [0, 2, 4, 6, 8, 10]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch_size must be ≥ 1"):
        DynamicBatcher("x", Forward(ManualClock()), max_batch_size=0, max_queue_delay_s=0,
                       max_queue_length=1, request_timeout_s=1)
    with pytest.raises(ValueError, match="less than request_timeout_s"):
        DynamicBatcher("x", Forward(ManualClock()), max_batch_size=1, max_queue_delay_s=2,
                       max_queue_length=1, request_timeout_s=1)


def test_batched_classifier_forward_equals_unbatched(manifest_fields):
    """The real model path: ClassifierAPI.run_batch on stacked requests vs one by one, within 1e-5."""
    torch.manual_seed(0)
    model = paper_model("mnist", "afrnn", layer_sizes=(8, 8), epsilon=0.1, gamma=0.1).eval()
    manifest = Manifest.model_validate({**manifest_fields(model, "mnist", "mnist"),
                                        "artifact": {"file": "mnist.pt", "sha256": "0" * 64, "bytes": 0}})
    api = ClassifierAPI(manifest, torch.jit.script(model), torch.device("cpu"))
    rng = np.random.default_rng(0)
    jobs = [ClassifyJob(api.decode(list(rng.integers(0, 256, size=(n, 784))), 255,
                                   [("images", i) for i in range(n)]), every_step=(n == 2))
            for n in (1, 3, 2)]
    clock = ManualClock()
    started = blocking_event()
    go = blocking_event()

    def run_batch(payloads):
        started.set()
        assert go.wait(60)                  # the first batch waits until every job is queued
        return api.run_batch(payloads)

    async def scenario():
        batcher = make(run_batch, clock, max_batch_size=16)
        first, = await _submitted(batcher.submit(jobs[0], jobs[0].rows))
        assert started.wait(60)
        rest = await _submitted(*(batcher.submit(job, job.rows) for job in jobs[1:]))
        go.set()
        batcher_results = await asyncio.gather(first, *rest)
        await batcher.close()
        return batcher_results

    with torch.inference_mode():
        alone = [api.run_batch([job])[0] for job in jobs]
        direct = [torch.softmax(model(torch.from_numpy(job.x)), dim=-1).numpy() for job in jobs]
    results = clock.run(scenario())
    assert [r.batch_rows for r in results] == [1, 5, 5]
    for result, single, oracle, job in zip(results, alone, direct, jobs, strict=True):
        assert result.value.shape == ((job.rows, 784, 10) if job.every_step else (job.rows, 10))
        np.testing.assert_allclose(result.value, single, rtol=0, atol=1e-5)
        last = result.value[:, -1] if job.every_step else result.value
        np.testing.assert_allclose(last, oracle, rtol=0, atol=1e-5)
