"""``POST /classify``: request and response."""

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from afrnn_schemas.common import Request, Response

ImageInput = Annotated[
    list[Any] | str,
    Field(description="one image: a flat list of T·C pixel values (784 for MNIST; 3072 = 1024 pixels × "
                      "RGB interleaved for CIFAR-10), a nested 28×28 / 32×32×3 (or T×C) array, or a "
                      "base64 PNG (optionally a data: URL) of the model's size",
          json_schema_extra={"anyOf": [{"type": "array", "items": {}}, {"type": "string",
                                                                        "format": "base64 PNG"}]}),
]


class ClassifyRequest(Request):
    """One image (``pixels``) or a batch (``images``) for an image classifier."""

    model: str | None = Field(None, description="classifier to use (e.g. 'mnist', 'cifar10'); may be "
                                                "omitted when only one classifier is served",
                              examples=["mnist"])
    pixels: ImageInput | None = Field(None, description="one image (exclusive with `images`)")
    images: list[ImageInput] | None = Field(None, min_length=1,
                                            description="a batch of images (exclusive with `pixels`); at "
                                                        "most `classify_max_batch` (default 64)")
    scale: Literal[1, 255] | None = Field(None, description="the value meaning full intensity: 255 for 0–255 "
                                                            "input, 1 for 0–1 input; required for pixel "
                                                            "arrays, ignored for PNGs (always 8-bit)")
    top_k: int = Field(1, ge=1, description="how many of the most probable classes to list")
    return_sequence: bool = Field(False, description="also return the prediction after every step "
                                                     "(anytime classification)")

    model_config = {"json_schema_extra": {"examples": [
        {"model": "mnist", "pixels": [0] * 784, "scale": 255, "top_k": 3},
        {"model": "cifar10", "images": [[[[0.5, 0.5, 0.5]] * 32] * 32], "scale": 1},
    ]}}

    @model_validator(mode="after")
    def _one_of_pixels_or_images(self) -> "ClassifyRequest":
        if (self.pixels is None) == (self.images is None):
            raise ValueError("give exactly one of `pixels` (one image) or `images` (a list of images)")
        return self

    @property
    def image_list(self) -> list:
        return [self.pixels] if self.pixels is not None else list(self.images)

    @property
    def image_locs(self) -> list[tuple]:
        if self.pixels is not None:
            return [("pixels",)]
        return [("images", i) for i in range(len(self.images))]


class ClassProbability(Response):
    label: int
    class_name: str
    probability: float


class AnytimeSequence(Response):
    """The prediction after every step t = 1 … T: argmax label and its probability."""

    labels: list[int]
    confidence: list[float]


class Prediction(Response):
    label: int = Field(examples=[7])
    class_name: str = Field(examples=["7"])
    probabilities: list[float] = Field(description="softmax over all classes, in label order")
    top_k: list[ClassProbability] = Field(description="the `top_k` most probable classes, best first")
    sequence: AnytimeSequence | None = Field(None, description="with `return_sequence`")


class ClassifyResponse(Response):
    model: str = Field(examples=["mnist"])
    version: str = Field(examples=["1.0.0"])
    predictions: list[Prediction] = Field(description="one per image, in request order")
    latency_ms: float = Field(description="server time from decoding to encoding this request")
    queue_ms: float = Field(description="time waiting for the model (part of latency_ms)")
    inference_ms: float = Field(description="the batched forward pass that answered (part of latency_ms)")
    batch_size: int = Field(description="rows in that forward pass (this request's and others')")
