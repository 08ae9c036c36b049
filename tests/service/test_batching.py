"""The dynamic batcher without HTTP: each concurrent caller gets its own answer, batches respect the
size limit, overload and timeouts fail fast, failures are isolated, and close() drains the queue."""

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

from artifact.manifest import Manifest
from model import paper_model
from service.batching import BatcherClosedError, DynamicBatcher, QueueFullError, RequestTimeoutError
from service.tasks import ClassifierAPI, ClassifyJob

torch.set_num_threads(1)


class Doubler:
    """run_batch for tests: doubles each payload, records the batches, can be slowed or poisoned."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.batches: list[list] = []
        self.threads: set[str] = set()

    def __call__(self, payloads: list) -> list:
        self.batches.append(list(payloads))
        self.threads.add(threading.current_thread().name)
        assert torch.is_inference_mode_enabled()
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(p == "poison" for p in payloads):
            raise ValueError("poisoned batch")
        return [p * 2 for p in payloads]


def make(run, **overrides) -> DynamicBatcher:
    options = dict(max_batch_size=8, max_queue_delay_s=0.0, max_queue_length=64, request_timeout_s=5.0)
    options.update(overrides)
    batcher = DynamicBatcher("test", run, **options)
    batcher.start()
    return batcher


def test_concurrent_callers_each_get_their_own_answer():
    async def scenario():
        run = Doubler(delay_s=0.02)
        batcher = make(run, max_batch_size=8)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        await batcher.close()
        return run, results

    run, results = asyncio.run(scenario())
    assert [r.value for r in results] == [2 * i for i in range(20)]
    assert all(len(b) <= 8 for b in run.batches)
    assert max(len(b) for b in run.batches) > 1, f"nothing was batched: {run.batches}"
    assert sum(len(b) for b in run.batches) == 20
    assert not any(name == threading.main_thread().name for name in run.threads)   # off the event loop
    assert all(r.batch_rows >= 1 and r.inference_s > 0 and r.queue_wait_s >= 0 for r in results)


def test_rows_count_toward_the_batch_limit_and_an_oversized_request_runs_alone():
    async def scenario():
        run = Doubler(delay_s=0.02)
        batcher = make(run, max_batch_size=4)
        first = asyncio.ensure_future(batcher.submit(100, rows=1))     # occupies the worker
        await asyncio.sleep(0.005)
        rest = [batcher.submit(1, rows=3), batcher.submit(2, rows=3), batcher.submit(3, rows=9)]
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return run, results

    run, results = asyncio.run(scenario())
    assert [r.value for r in results] == [200, 2, 4, 6]
    assert run.batches == [[100], [1], [2], [3]]           # 3 + 3 > 4, and the 9-row request alone
    assert results[3].batch_rows == 9


def test_the_model_thread_takes_the_next_batch_while_the_event_loop_is_busy():
    """Queued requests keep the model's thread busy without a turn of the event loop between batches:
    with the loop blocked for 0.3 s, all three one-row batches run (0.03 s each) inside that time."""
    async def scenario():
        starts: list[float] = []

        def run(payloads):
            starts.append(time.perf_counter())
            time.sleep(0.03)
            return [p * 2 for p in payloads]

        batcher = make(run, max_batch_size=1)
        pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0)                  # all three are queued, the first batch has started
        time.sleep(0.3)                         # the event loop is busy (not awaiting)
        unblocked = time.perf_counter()
        results = await asyncio.gather(*pending)
        await batcher.close()
        return starts, unblocked, [r.value for r in results]

    starts, unblocked, values = asyncio.run(scenario())
    assert values == [0, 2, 4]
    assert len(starts) == 3 and all(start < unblocked for start in starts)


async def _timed(batcher, payload):
    started = time.perf_counter()
    result = await batcher.submit(payload)
    return result, time.perf_counter() - started


class Costed(Doubler):
    """A Doubler whose forward takes ``fixed_s + per_row_s × rows``."""

    def __init__(self, fixed_s: float, per_row_s: float):
        super().__init__()
        self.fixed_s, self.per_row_s = fixed_s, per_row_s

    def __call__(self, payloads: list) -> list:
        time.sleep(self.fixed_s + self.per_row_s * len(payloads))
        return super().__call__(payloads)


async def _measure_two_sizes(batcher, run) -> None:
    """One batch of 1 row and one of 2, so that the batcher has a line through its forward times."""
    await batcher.submit(0)
    await batcher.submit(0, rows=2)
    run.batches.clear()


def test_a_lone_client_is_never_held_open():
    """One request at a time: the recent peak is one row, so the window adds nothing to its latency,
    although the forward's fixed cost would make waiting worth it. (The first request may be held: the
    request before it, from the same client, had two rows.)"""
    async def scenario():
        run = Costed(fixed_s=0.05, per_row_s=0.001)
        batcher = make(run, max_queue_delay_s=0.5)
        await _measure_two_sizes(batcher, run)
        latencies = [(await _timed(batcher, i))[1] for i in range(4)]
        await batcher.close()
        return run.batches, latencies

    batches, latencies = asyncio.run(scenario())
    assert batches == [[0], [1], [2], [3]]
    assert max(latencies[1:]) < 0.09, latencies             # held, it would take ≥ 0.05 + 0.051


def _returning_rows(run: Costed, sizes_measured: int = 2, **options):
    """A batcher over ``run`` measures its forward at 1 and 2 rows (``sizes_measured`` = 2), then has
    four rows outstanding together (four requests; with ``sizes_measured`` = 1, one request of four
    rows and no other size). Then one request arrives, and three more 30 ms later (closed-loop clients
    coming back at different times). Returns the batches of that last part, and the first's result."""
    async def scenario():
        batcher = make(run, **options)
        if sizes_measured == 2:
            await _measure_two_sizes(batcher, run)
            await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        else:
            await batcher.submit(0, rows=4)
        run.batches.clear()
        first = asyncio.ensure_future(batcher.submit(10))
        await asyncio.sleep(0.03)
        late = await asyncio.gather(*(batcher.submit(i) for i in (11, 12, 13)))
        result = await first
        await batcher.close()
        assert result.value == 20 and [r.value for r in late] == [22, 24, 26]
        return run.batches, result

    return asyncio.run(scenario())


def test_a_batch_is_held_open_for_returning_rows_when_the_forward_has_a_fixed_cost():
    """A 60-ms fixed cost per forward: waiting 30 ms for three rows saves one. The first request waits
    for them; with max_queue_delay_s = 0 it runs alone."""
    batches, first = _returning_rows(Costed(fixed_s=0.06, per_row_s=0.001), max_queue_delay_s=0.5)
    assert batches[0][0] == 10 and len(batches[0]) >= 3, batches
    assert first.queue_wait_s >= 0.025
    batches, _ = _returning_rows(Costed(fixed_s=0.06, per_row_s=0.001), max_queue_delay_s=0.0)
    assert batches[0] == [10]


def test_a_hold_is_tried_when_only_one_batch_size_was_measured():
    """Traffic that settles into equal half batches measures one size only, and no line: the cheapest
    measured time bounds the fixed cost, so the window is tried (and then measures a second size)."""
    batches, _ = _returning_rows(Costed(fixed_s=0.06, per_row_s=0.001), sizes_measured=1,
                                 max_queue_delay_s=0.5)
    assert batches[0][0] == 10 and len(batches[0]) >= 3, batches


@pytest.mark.parametrize("fixed_s, per_row_s, max_batch_size", [
    (0.0, 0.01, 8),       # no fixed cost: one batch of four costs what four batches of one do
    (0.06, 0.001, 2)])    # four rows outstanding and batches of two: the returning rows make a batch anyway
def test_the_first_request_runs_at_once_when_waiting_cannot_pay(fixed_s, per_row_s, max_batch_size):
    batches, first = _returning_rows(Costed(fixed_s=fixed_s, per_row_s=per_row_s),
                                     max_batch_size=max_batch_size, max_queue_delay_s=0.5)
    assert batches[0] == [10], batches
    assert first.queue_wait_s < 0.02


def test_the_hold_rule_weighs_the_returning_rows_pace_against_the_fixed_cost():
    """The rule itself, on given measurements: f(n) = 60 ms + 1 ms·n, so a = 60 ms. Four rows whose
    requests come 1 ms apart are worth holding for (4 ms < 60 ms); 30 ms apart they are not (120 ms);
    a few long gaps (the pauses between bursts) do not move the median; more rows than a batch holds,
    or a batch already complete, are never held."""
    def unstarted(delay_s: float) -> DynamicBatcher:
        return DynamicBatcher("test", Doubler(), max_batch_size=8, max_queue_delay_s=delay_s,
                              max_queue_length=64, request_timeout_s=5.0)

    batcher = unstarted(0.5)
    batcher._forward_s.update({1: 0.061, 2: 0.062, 8: 0.068})
    batcher._arrival_gaps.extend([0.001] * 5)
    assert batcher._hold_s(1, 4) == pytest.approx(0.060)
    batcher._arrival_gaps.extend([0.05, 0.05])
    assert batcher._hold_s(1, 4) == pytest.approx(0.060)
    assert batcher._hold_s(1, 9) == 0.0 and batcher._hold_s(4, 4) == 0.0
    batcher._arrival_gaps.clear()
    batcher._arrival_gaps.extend([0.03] * 5)
    assert batcher._hold_s(1, 4) == 0.0
    capped = unstarted(0.02)
    capped._forward_s.update({1: 0.061, 2: 0.062})
    assert capped._hold_s(1, 4) == pytest.approx(0.02)


def test_a_held_batch_runs_at_its_deadline_and_the_window_follows_the_traffic_down():
    """After four concurrent requests, a lone one is held for min(fixed cost, max_queue_delay_s) (the
    others do not come back), and the next lone one is not held: the peak is measured again from batch
    to batch."""
    async def scenario():
        run = Costed(fixed_s=0.3, per_row_s=0.001)
        batcher = make(run, max_queue_delay_s=0.06)
        await _measure_two_sizes(batcher, run)
        await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        run.batches.clear()
        held = await _timed(batcher, 10)
        lone = await _timed(batcher, 11)
        await batcher.close()
        return run.batches, held, lone

    batches, (held, held_s), (lone, lone_s) = asyncio.run(scenario())
    assert batches == [[10], [11]]
    assert held.value == 20 and 0.055 <= held.queue_wait_s < 0.25      # the cap, not the fixed cost
    assert lone.value == 22 and lone.queue_wait_s < 0.02


def test_full_queue_is_refused_at_once_with_a_retry_hint():
    async def scenario():
        run = Doubler(delay_s=0.1)
        batcher = make(run, max_batch_size=1, max_queue_length=2)
        busy = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.02)                               # 0 is in the forward pass
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError, match="max_queue_length = 2") as refused:
            await batcher.submit(3)
        results = await asyncio.gather(busy, *queued)
        await batcher.close()
        return refused.value, results

    error, results = asyncio.run(scenario())
    assert error.retry_after_s >= 1
    assert [r.value for r in results] == [0, 2, 4]


def test_timeout_raises_and_drops_the_request_from_the_queue():
    async def scenario():
        run = Doubler(delay_s=0.2)
        batcher = make(run, max_batch_size=1, request_timeout_s=0.05)
        busy = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.01)
        with pytest.raises(RequestTimeoutError, match="request_timeout_s = 0.05"):
            await batcher.submit(1)                             # waits behind 0, times out queued
        depth = batcher.queue_depth
        with pytest.raises(RequestTimeoutError):
            await busy                                          # its forward outlives the timeout
        await batcher.close()
        return run.batches, depth

    batches, depth = asyncio.run(scenario())
    assert depth == 0
    assert batches == [[0]]                                     # the timed-out request never ran


def test_a_cancelled_caller_is_dropped_from_the_queue_and_the_others_are_served():
    async def scenario():
        run = Doubler(delay_s=0.1)
        batcher = make(run, max_batch_size=1, request_timeout_s=0.5)
        busy = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(batcher.submit(1))          # queued behind 0
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()                                           # the client went away
        with pytest.raises(asyncio.CancelledError):
            await gone
        depth = batcher.queue_depth
        results = await asyncio.gather(busy, kept)
        await asyncio.sleep(0.6)                                # past every timer: none fires late
        await batcher.close()
        return run.batches, depth, [r.value for r in results]

    batches, depth, values = asyncio.run(scenario())
    assert depth == 1                                           # only 2 still waits
    assert values == [0, 4]
    assert batches == [[0], [2]]                                # the cancelled request never ran


def test_a_failing_request_does_not_fail_its_batch_neighbours():
    async def scenario():
        run = Doubler(delay_s=0.02)
        batcher = make(run)
        busy = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.005)
        outcomes = await asyncio.gather(batcher.submit(1), batcher.submit("poison"), batcher.submit(3),
                                        return_exceptions=True)
        await busy
        await batcher.close()
        return run.batches, outcomes

    batches, outcomes = asyncio.run(scenario())
    assert [1, "poison", 3] in batches                          # they were batched, then retried alone
    assert outcomes[0].value == 2 and outcomes[2].value == 6
    assert isinstance(outcomes[1], ValueError)


def test_close_drains_the_queue_then_refuses_new_requests():
    async def scenario():
        run = Doubler(delay_s=0.02)
        batcher = make(run, max_batch_size=2)
        pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(6)]
        await asyncio.sleep(0)
        await batcher.close(drain_timeout_s=5)
        with pytest.raises(BatcherClosedError):
            await batcher.submit(99)
        return [p.result().value for p in pending]

    assert asyncio.run(scenario()) == [0, 2, 4, 6, 8, 10]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch_size must be ≥ 1"):
        DynamicBatcher("x", Doubler(), max_batch_size=0, max_queue_delay_s=0, max_queue_length=1,
                       request_timeout_s=1)
    with pytest.raises(ValueError, match="less than request_timeout_s"):
        DynamicBatcher("x", Doubler(), max_batch_size=1, max_queue_delay_s=2, max_queue_length=1,
                       request_timeout_s=1)


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

    async def scenario():
        batcher = make(api.run_batch, max_batch_size=16)
        batcher_results = await asyncio.gather(*(batcher.submit(job, job.rows) for job in jobs))
        await batcher.close()
        return batcher_results

    with torch.inference_mode():
        alone = [api.run_batch([job])[0] for job in jobs]
        direct = [torch.softmax(model(torch.from_numpy(job.x)), dim=-1).numpy() for job in jobs]
    results = asyncio.run(scenario())
    assert any(r.batch_rows > 1 for r in results)
    for result, single, oracle, job in zip(results, alone, direct, jobs, strict=True):
        assert result.value.shape == ((job.rows, 784, 10) if job.every_step else (job.rows, 10))
        np.testing.assert_allclose(result.value, single, rtol=0, atol=1e-5)
        last = result.value[:, -1] if job.every_step else result.value
        np.testing.assert_allclose(last, oracle, rtol=0, atol=1e-5)
