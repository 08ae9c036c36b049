"""``POST /models/{name}/stability`` and ``GET /models/{name}/stability.png``."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from afrnn_schemas import ERROR_RESPONSES, StabilityRequest
from model.stability import FIGURE_SECTIONS, StabilityReport
from service.api.deps import MetricsDep, ModelDep, SettingsDep, StabilityDep
from service.api.json_body import FastJSONRoute
from service.api.route_classes import RouteClass, classed
from service.errors import InputError
from service.registry import ServedModel

router = APIRouter(prefix="/models", tags=["stability"], route_class=FastJSONRoute)


@router.post("/{name}/stability", response_model=StabilityReport, responses=ERROR_RESPONSES)
@classed(RouteClass.HEAVY)
async def stability(entry: ModelDep, body: StabilityRequest, reports: StabilityDep, metrics: MetricsDep,
                    settings: SettingsDep) -> StabilityReport:
    """The model's stability report (Theorem 3, Jacobian spectra, gradient propagation, Lyapunov
    exponents) for its default input (cached) or for a given sample."""
    entry.require_ready()
    sections = reports.check_options(entry, body.sections, body.lyapunov_k)
    _reject_fields_that_do_not_apply(entry, body)
    x = None
    if body.has_sample:
        x = reports.sample_input(entry, body.pixels, body.scale,
                                 body.initial_state.model_dump() if body.initial_state else None,
                                 body.units, body.steps, settings.pendulum_max_steps)
    report, cached = await reports.report(entry, sections, body.lyapunov_k, x)
    metrics.stability_reports.labels(model=entry.name,
                                     cache="custom" if x is not None else ("hit" if cached else "miss")).inc()
    return report


def _reject_fields_that_do_not_apply(entry: ServedModel, body: StabilityRequest) -> None:
    """Sample options (`scale`; `units`, `steps`) only describe a sample of the model's own kind."""
    api = entry.api
    if body.has_sample and getattr(body, api.SAMPLE_FIELD) is None:
        return                          # a sample for the other kind: sample_input names that field
    given = body.model_fields_set
    own = api.SAMPLE_OPTIONS
    for field in sorted(given & {"scale", "units", "steps"}):
        if field not in own:
            raise InputError((field,), f"`{field}` does not apply to model {entry.name!r} "
                                       f"({entry.manifest.task}); it takes {sorted(own)}")
        if not body.has_sample:
            sample = "pixels" if field == "scale" else "initial_state"
            raise InputError((field,), f"`{field}` describes a sample: give `{sample}` with it, or omit "
                                       f"it for the default input")


@router.get("/{name}/stability.png", response_class=Response, responses={
    **ERROR_RESPONSES, 200: {"content": {"image/png": {}}, "description": "the report's figures"}})
@classed(RouteClass.HEAVY)
async def stability_png(entry: ModelDep, reports: StabilityDep, metrics: MetricsDep,
                        sections: Annotated[list[str] | None, Query()] = None,
                        lyapunov_k: Annotated[int, Query(ge=1)] = 16) -> Response:
    """The figures of the default-input stability report, as one PNG (cached)."""
    entry.require_ready()
    try:
        checked = reports.check_options(entry, sections, lyapunov_k)
    except InputError as err:
        raise InputError(("query", *err.loc), err.msg) from None
    if checked is not None and not set(checked) & set(FIGURE_SECTIONS):
        raise InputError(("query", "sections"), f"the PNG needs at least one section with a figure: "
                                                f"{list(FIGURE_SECTIONS)}; got {list(checked)}")
    png, cached = await reports.png(entry, checked, lyapunov_k)
    metrics.stability_reports.labels(model=entry.name, cache="hit" if cached else "miss").inc()
    return Response(content=png, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=3600"})
