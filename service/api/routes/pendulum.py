"""``POST /pendulum/predict``: double-pendulum rollouts with dynamic batching.

Like ``POST /classify``, the handler has the lean form (``service.api.json_body``): it reads the
registry and settings from the request instead of through dependencies and returns the response
already serialised, so the guard middleware calls it directly.
"""

import time

import numpy as np
from fastapi import APIRouter, Request, Response

from afrnn_schemas import ERROR_RESPONSES, PendulumRequest, PendulumResponse
from service.admission import check_deadline, request_deadline
from service.api.deps import registry_of, settings_of
from service.api.json_body import FastJSONRoute
from service.api.route_classes import RouteClass, classed
from service.api.submit import run_heavy, submit
from service.errors import InputError
from service.tasks import PendulumAPI, PendulumJob

router = APIRouter(prefix="/pendulum", tags=["inference"], route_class=FastJSONRoute)


@router.post("/predict", response_model=PendulumResponse, responses=ERROR_RESPONSES)
@classed(RouteClass.WORK)
async def predict(body: PendulumRequest, request: Request) -> Response:
    """Predict the double pendulum's states at dt, 2 dt, …, steps·dt from its initial state(s)."""
    started = time.perf_counter()
    registry, settings = registry_of(request), settings_of(request)
    entry = registry.resolve(body.model, PendulumAPI.KIND, default="pendulum")
    request.state.model, request.state.model_version = entry.name, str(entry.version)
    api = entry.api
    states = body.state_list
    if len(states) > settings.pendulum_max_batch:
        raise InputError(("initial_states",), f"at most pendulum_max_batch = {settings.pendulum_max_batch} "
                                              f"initial states per request, got {len(states)}")
    if body.include_reference and len(states) > settings.pendulum_reference_max_batch:
        limit = settings.pendulum_reference_max_batch
        raise InputError(("include_reference",), f"at most pendulum_reference_max_batch = {limit} "
                                                 f"initial states per request with include_reference, "
                                                 f"got {len(states)}")
    steps = body.steps if body.steps is not None else api.trained_steps
    if steps > settings.pendulum_max_steps:
        raise InputError(("steps",), f"steps must be ≤ pendulum_max_steps = {settings.pendulum_max_steps}, "
                                     f"got {steps}")
    x0 = api.decode([s.model_dump() for s in states], body.units, body.state_locs)
    result = await submit(entry, PendulumJob(x0, steps))
    if body.include_reference:     # the physics solver is CPU work: the work lane, under the deadline
        # the solver's time grows with the states and the simulated span
        trajectories = await run_heavy(request, _encode_with_reference, api, result.value, x0, body.units,
                                       request_deadline.get(), kind="physics reference",
                                       work=len(x0) * steps)
    else:
        trajectories = api.encode(result.value, np.asarray(x0), body.units, False)
    response = PendulumResponse(
        model=entry.name, version=entry.manifest.version, units=body.units, mse_units=f"{body.units}²",
        dt=api.dt, times=api.times(steps), trained_steps=api.trained_steps,
        extrapolated=steps > api.trained_steps, trajectories=trajectories,
        latency_ms=(time.perf_counter() - started) * 1000)
    return Response(response.model_dump_json(), media_type="application/json")


def _encode_with_reference(api, predicted: np.ndarray, x0: np.ndarray, units: str, deadline: float | None
                           ) -> list[dict]:
    """``api.encode`` with the physics reference, one initial state at a time, stopping (→ 504) as soon
    as the request's deadline has passed: a rollout never runs past ``request_timeout_s``."""
    trajectories = []
    for i in range(len(x0)):
        check_deadline(deadline, "the physics reference")
        trajectories += api.encode(predicted[i:i + 1], x0[i:i + 1], units, True)
    return trajectories
