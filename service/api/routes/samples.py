"""``GET /samples/{task}`` and ``GET /samples/{task}/{index}``: the shipped test images
(``artifact.samples``), for the demo page and for clients that want a real input to try.

Pixels are served as the service reads them: raw 0–255 values in the model's pixel-sequence layout
(T·C values, row-major, channels interleaved), ready for ``POST /classify`` with ``scale: 255``.
"""

import functools
import math
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import Field
from starlette.exceptions import HTTPException

from afrnn_schemas import ERROR_RESPONSES
from afrnn_schemas.common import Response
from artifact import specs
from artifact.samples import Sample, load_sample
from service.api.route_classes import RouteClass, classed
from service.errors import InputError

SampleTask = Literal["mnist", "cifar10"]
CLASS_NAMES = {"mnist": specs.MNIST_CLASS_NAMES, "cifar10": specs.CIFAR10_CLASS_NAMES}

router = APIRouter(prefix="/samples", tags=["samples"])


class SampleEntry(Response):
    index: int = Field(description="position in the shipped sample (the path's `index`)")
    test_index: int = Field(description="position of the image in the data set's test split")
    label: int
    class_name: str


class SampleList(Response):
    task: SampleTask
    source: str = Field(description="the data set and split the images come from")
    height: int
    width: int
    channels: int
    images: list[SampleEntry]


class SampleImage(SampleEntry):
    task: SampleTask
    height: int
    width: int
    channels: int
    pixels: list[int] = Field(description="height·width·channels values 0–255, row-major, channels "
                                          "interleaved: the `pixels` of a /classify request with scale 255")


@functools.cache
def _sample(task: str) -> Sample:
    try:
        return load_sample(task)
    except FileNotFoundError as err:
        raise HTTPException(404, f"no shipped {task} sample in this installation: {err}") from None


def _geometry(sample: Sample) -> tuple[int, int, int]:
    steps, channels = sample.pixels.shape[1:]
    side = math.isqrt(steps)                      # the image tasks are square: 28×28, 32×32
    return side, steps // side, channels


def _entry(task: str, sample: Sample, index: int) -> dict:
    label = int(sample.labels[index])
    return dict(index=index, test_index=int(sample.indices[index]), label=label,
                class_name=CLASS_NAMES[task][label])


@router.get("/{task}", response_model=SampleList, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def list_samples(task: SampleTask) -> SampleList:
    """The shipped test images of `task`: their labels and test-split positions (no pixels)."""
    sample = _sample(task)
    height, width, channels = _geometry(sample)
    return SampleList(task=task, source=sample.source, height=height, width=width, channels=channels,
                      images=[SampleEntry(**_entry(task, sample, i)) for i in range(len(sample.labels))])


@router.get("/{task}/{index}", response_model=SampleImage, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def get_sample(task: SampleTask, index: Annotated[int, Path(ge=0)]) -> SampleImage:
    """One shipped test image with its label, as 0–255 pixels."""
    sample = _sample(task)
    if index >= len(sample.labels):
        raise InputError(("path", "index"), f"index must be < {len(sample.labels)}, the number of shipped "
                                            f"{task} test images; got {index}")
    height, width, channels = _geometry(sample)
    return SampleImage(**_entry(task, sample, index), task=task, height=height, width=width,
                       channels=channels, pixels=sample.pixels[index].reshape(-1).tolist())
