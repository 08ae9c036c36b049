"""Image classifiers (pixel MNIST, pixel CIFAR-10, any manifest whose output kind is ``classes``).

The LitServe split, with everything shape- and normalisation-related taken from the manifest:

* **decode** (request handler): one image — a flat pixel list of T·C values, a nested (H, W) or
  (H, W, C) or (T, C) array, or a base64 PNG — becomes the (T, C) float32 sequence the network was
  trained on::

      x_t,c = (pixel_t,c / scale − mean_c) / std_c,        t = row · W + col,

  the T pixels in row-major order and C channels per pixel (a flat list interleaves them: r₀ g₀ b₀
  r₁ …, i.e. the HWC layout, not the planar layout of the CIFAR-10 pickles). ``scale`` is the value
  of full intensity: 255 for 0–255 input, 1 for 0–1 input; a PNG is always 8-bit (scale 255).
* **batch → predict → unbatch** (worker thread, ``run_batch``): the requests' (n_i, T, C) arrays are
  concatenated into one (N, T, C) tensor — sequences of one model all have length T, so a batch is a
  plain stack — and run through ``module(x, every_step=...)``; softmax gives probabilities, split
  back per request. If any request asks for per-step predictions, the whole batch runs with
  ``every_step=True`` and the others take its last step.
* **encode** (request handler): label, class name, probabilities, top-k and, with
  ``return_sequence``, the per-step label and confidence (anytime classification).

The same model over the Open Inference Protocol (``v2_*``, ``service.api.routes.v2``): input ``pixels``,
UINT8 grey values 0–255 (scale 255) or FP32 values in [0, 1] (scale 1), shape [n, T·C] in the flat
order above; outputs ``label`` (INT64 [n]), ``probabilities`` (FP32 [n, classes]) and, when asked for
by name, the anytime outputs ``sequence_labels`` (INT64 [n, T]) and ``sequence_confidence``
(FP32 [n, T]). The normalisation is the same array operations in the same order as ``decode_image``,
so a V2 row and a JSON row of the same pixels are the same float32 input, bit for bit.
"""

import base64
import binascii
import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from artifact.manifest import Manifest
from model.inference import FastRecurrence
from service.errors import InputError

log = logging.getLogger(__name__)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _leaf_types(value: Any) -> set[type]:
    """The types of the non-list leaves of a nested list as parsed from JSON (C-level ``map`` per row)."""
    if type(value) is not list:
        return {type(value)}
    kinds = set(map(type, value))
    if list in kinds:
        kinds.discard(list)
        for item in value:
            if type(item) is list:
                kinds |= _leaf_types(item)
    return kinds


def no_booleans(body: bytes) -> bool:
    """True when the JSON ``body`` holds no ``true`` or ``false`` anywhere (a string may hold those
    letters: then it says False, and the images get the full type check)."""
    return b"true" not in body and b"false" not in body


@dataclass
class ClassifyJob:
    """One request's images, decoded: ``x`` is (n, T, C) float32, already normalised."""

    x: np.ndarray
    every_step: bool = False

    @property
    def rows(self) -> int:
        return self.x.shape[0]


class ClassifierAPI:
    """Decode, batch, predict, unbatch and encode for one loaded classifier."""

    KIND = "classes"                # the manifests' ``output.kind`` this API serves
    STREAMS = True                  # a stream (and a V2 sequence) can feed it its pixels step by step
    V2_INPUT = "pixels"
    V2_SEQUENCE_OUTPUTS = ("sequence_labels", "sequence_confidence")
    V2_OUTPUTS = frozenset({"label", "probabilities", *V2_SEQUENCE_OUTPUTS})
    V2_SCALES = {"UINT8": 255.0, "FP32": 1.0}     # pixels' datatype → the value of full intensity
    SAMPLE_FIELD = "pixels"          # a stability report's sample of this kind, and its options
    SAMPLE_OPTIONS = frozenset({"scale"})


    def __init__(self, manifest: Manifest, module: torch.jit.ScriptModule, device: torch.device):
        if manifest.output.kind != self.KIND:
            raise ValueError(f"{manifest.name}: output kind {manifest.output.kind!r} is not {self.KIND!r}")
        spec = manifest.input
        self.manifest = manifest
        self.module = module
        self.device = device
        self.fast, self.fast_path_reason = (FastRecurrence.from_module(module) if device.type == "cpu"
                                            else (None, f"device {device} (the C loop is CPU-only)"))
        self.steps = spec.sequence_length
        self.channels = spec.channels
        if len(spec.normalization_mean) != self.channels or len(spec.normalization_std) != self.channels:
            raise ValueError(f"{manifest.name}: manifest has {self.channels} channels but normalisation "
                             f"mean {spec.normalization_mean} / std {spec.normalization_std}")
        self.mean = np.asarray(spec.normalization_mean, dtype=np.float32)
        self.std = np.asarray(spec.normalization_std, dtype=np.float32)
        self.value_range = spec.value_range
        side = math.isqrt(self.steps)
        self.side = side if side * side == self.steps else None
        names = manifest.output.class_names
        self.class_names = list(names) if names else None
        self.accepted_shapes = self._accepted_shapes()

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else int(self.manifest.architecture.config.get(
            "output_size", 0))

    def class_name(self, label: int) -> str:
        return self.class_names[label] if self.class_names else str(label)

    def _accepted_shapes(self) -> list[tuple[int, ...]]:
        t, c = self.steps, self.channels
        shapes = [(t * c,), (t, c)]
        if self.side is not None:
            if c == 1:
                shapes.append((self.side, self.side))
            shapes.append((self.side, self.side, c))
        return list(dict.fromkeys(shapes))

    # -- decode -----------------------------------------------------------------------------------
    def decode(self, images: Sequence[Any], scale: float | None, locs: Sequence[Sequence[str | int]],
               booleans_possible: bool = True) -> np.ndarray:
        """Images → normalised (n, T, C) float32; ``locs[i]`` names image i in ``InputError``s.
        ``booleans_possible=False`` says that the request held no ``true``/``false`` (``no_booleans``)."""
        out = np.empty((len(images), self.steps, self.channels), dtype=np.float32)
        for i, (image, loc) in enumerate(zip(images, locs, strict=True)):
            self.decode_image(image, scale, loc, out=out[i], booleans_possible=booleans_possible)
        return out

    def decode_image(self, image: Any, scale: float | None, loc: Sequence[str | int],
                     out: np.ndarray | None = None, booleans_possible: bool = True) -> np.ndarray:
        """One image → normalised (T, C) float32, written into ``out`` when given. In place, in float32:
        a few array operations per image, each of which may hand the GIL to the model's thread."""
        out = np.empty((self.steps, self.channels), dtype=np.float32) if out is None else out
        if isinstance(image, str):
            out[...] = self._decode_png(image, loc)
        else:
            if scale is None:
                raise InputError(("scale",), "scale is required with pixel arrays: 255 when the values "
                                             "are 0–255, 1 when they are 0–1")
            scale = float(scale)
            pixels = None if booleans_possible else self._eight_bit(image, scale)
            out[...] = self._decode_array(image, scale, loc) if pixels is None else pixels
            out /= np.float32(scale)
        out -= self.mean
        out /= self.std
        return out

    def _eight_bit(self, image: Any, scale: float) -> np.ndarray | None:
        """A flat list of T·C integers in 0–255 that obey the value range, as (T, C) uint8, else None.
        ``bytes`` reads the list in one C loop and refuses anything else (floats, nested lists, values
        outside 0–255); it would take ``true`` as 1, so the caller rules booleans out first. The values
        are the general path's exactly: integers up to 255 are exact in float32."""
        if type(image) is not list or len(image) != self.steps * self.channels:
            return None
        try:
            pixels = np.frombuffer(bytes(image), dtype=np.uint8).reshape(self.steps, self.channels)
        except (TypeError, ValueError):
            return None
        low, high = self._bounds(scale)
        return pixels if low <= pixels.min() and pixels.max() <= high else None

    def _bounds(self, scale: float) -> tuple[float, float]:
        """The pixel values allowed at ``scale``: the manifest's value range, in the units sent."""
        return self.value_range[0] * scale, self.value_range[1] * scale

    def _decode_array(self, image: Any, scale: float, loc: Sequence[str | int]) -> np.ndarray:
        """The pixel array as sent, (T, C), once its shape, types and values are checked."""
        try:
            arr = np.asarray(image)
        except (ValueError, TypeError):
            arr = None
        if arr is None or arr.dtype.kind not in "iuf":
            raise InputError(loc, "must be a rectangular array of numbers (a flat pixel list or a nested "
                                  f"image array) or a base64 PNG string; accepted shapes for model "
                                  f"{self.manifest.name!r}: {self._shapes_text()}")
        if bool in _leaf_types(image):         # numpy reads true / false among numbers as 1 / 0
            raise InputError(loc, "pixel values must be numbers; found a boolean (true or false)")
        if arr.shape not in self.accepted_shapes:
            raise InputError(loc, f"shape {tuple(arr.shape)} is not an image of model "
                                  f"{self.manifest.name!r}; accepted shapes: {self._shapes_text()}")
        # checked as sent (float64): 1e308 is out of range, not the float32 "inf" it would become.
        # Both rules in two reductions: NaN fails every comparison, ±inf the range.
        arr = arr.reshape(self.steps, self.channels)
        low, high = self._bounds(scale)
        if low <= arr.min() and arr.max() <= high:
            return arr
        bad = ~np.isfinite(arr)
        if bad.any():
            index = int(np.flatnonzero(bad.ravel())[0])
            raise InputError(loc, f"pixel values must be finite numbers; found {arr.ravel()[index]} at flat "
                                  f"index {index}")
        index = int(np.flatnonzero(((arr < low) | (arr > high)).ravel())[0])
        raise InputError(loc, f"pixel values must lie in [{low:g}, {high:g}] for scale {scale:g}; "
                              f"found {arr.ravel()[index]:g} at flat index {index}")

    def _decode_png(self, text: str, loc: Sequence[str | int]) -> np.ndarray:
        payload = text
        if text.startswith("data:"):
            header, comma, payload = text.partition(",")
            if not comma:
                raise InputError(loc, "a data: URL needs a comma before its base64 payload "
                                      "(data:image/png;base64,<payload>)")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(loc, "a string image must be a base64-encoded PNG (optionally a data: URL); "
                                  "the string is not valid base64") from None
        if not raw.startswith(PNG_MAGIC):
            raise InputError(loc, "a string image must be a base64-encoded PNG; the decoded bytes do not "
                                  "start with the PNG signature")
        try:
            with Image.open(io.BytesIO(raw)) as img:
                if self.side is None or img.size != (self.side, self.side):
                    want = f"{self.side}×{self.side}" if self.side else "no PNG input (not a square image)"
                    raise InputError(loc, f"PNG is {img.size[0]}×{img.size[1]} pixels; model "
                                          f"{self.manifest.name!r} takes {want}")
                mode = "L" if self.channels == 1 else "RGB"
                if self.channels not in (1, 3):
                    raise InputError(loc, f"model {self.manifest.name!r} has {self.channels} channels; "
                                          "PNG input needs 1 (greyscale) or 3 (RGB)")
                pixels = np.asarray(img.convert(mode), dtype=np.float32)
        except Image.DecompressionBombError:
            raise InputError(loc, f"the PNG's header declares more than {Image.MAX_IMAGE_PIXELS} pixels; "
                                  f"model {self.manifest.name!r} takes {self.side}×{self.side}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            if isinstance(err, InputError):
                raise
            # the message only: PIL's can hold the repr of its buffer object, with a memory address
            reason = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(err)).strip() or type(err).__name__
            raise InputError(loc, f"the PNG could not be decoded ({reason})") from None
        return pixels.reshape(self.steps, self.channels) / np.float32(255.0)

    def _shapes_text(self) -> str:
        return ", ".join(str(s) for s in self.accepted_shapes)

    # -- batch → predict → unbatch (worker thread, under torch.inference_mode) ---------------------
    def run_batch(self, jobs: list[ClassifyJob]) -> list[np.ndarray]:
        """Probabilities per job: (n, classes), or (n, T, classes) for jobs that asked for every step."""
        x = torch.from_numpy(np.concatenate([job.x for job in jobs]) if len(jobs) > 1 else jobs[0].x)
        every_step = any(job.every_step for job in jobs)
        probabilities = self.predict(x, every_step).cpu().numpy()
        out, start = [], 0
        for job in jobs:
            part = probabilities[start:start + job.rows]
            start += job.rows
            out.append(part if job.every_step or not every_step else part[:, -1])
        return out

    def predict(self, x: torch.Tensor, every_step: bool) -> torch.Tensor:
        if self.fast is not None and not every_step:      # every batch size: docs/performance.md
            return torch.softmax(self.fast(x), dim=-1)
        logits = self.module(x.to(self.device, non_blocking=True), None, every_step)
        return torch.softmax(logits.float(), dim=-1)

    def warmup(self, max_batch_size: int) -> None:
        """Real-shaped forward passes (batch 1, both modes, and a full batch) so that the first request
        does not pay for TorchScript's profiling runs or the C loop's first call."""
        zero = self.decode_image(np.zeros((self.steps * self.channels,)), 1.0, ("warmup",))[None]
        with torch.inference_mode():
            for _ in range(3):
                self.run_batch([ClassifyJob(zero)])
            self.run_batch([ClassifyJob(zero, every_step=True)])
            self.run_batch([ClassifyJob(np.repeat(zero, max_batch_size, axis=0))])

    # -- stability reports (service.stability) ---------------------------------------------------------
    def stability_default_input(self) -> torch.Tensor | None:
        """None: a classifier's report runs on its own default input (zeros)."""
        return None

    def stability_sample(self, pixels: Any, scale: float | None, **_: Any) -> torch.Tensor:
        """A caller's image as the network input (1, T, C), normalised as for inference."""
        return torch.from_numpy(self.decode_image(pixels, scale, ("pixels",)))[None]

    # -- the Open Inference Protocol -----------------------------------------------------------------
    def v2_signature(self) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
        """(inputs, outputs) as (name, datatype, shape); −1 is the batch."""
        t = self.steps
        return ([(self.V2_INPUT, "UINT8", [-1, t * self.channels])],
                [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, self.num_classes]),
                 ("sequence_labels", "INT64", [-1, t]), ("sequence_confidence", "FP32", [-1, t])])

    def v2_pixels(self, array: np.ndarray, datatype: str, where: str, max_rows: int) -> np.ndarray:
        """``pixels`` [n, T·C] (UINT8 0–255 or FP32 in [0, 1]) → normalised (n, T, C) float32."""
        width = self.steps * self.channels
        if array.ndim != 2 or array.shape[1] != width or array.shape[0] < 1:
            raise InputError((where,), f"shape {list(array.shape)} is not a batch of images of model "
                                       f"{self.manifest.name!r}: [n, {width}] (n ≥ 1, {self.steps} steps × "
                                       f"{self.channels} channels, flat)")
        if array.shape[0] > max_rows:
            raise InputError((where,), f"at most classify_max_batch = {max_rows} images per request, got "
                                       f"{array.shape[0]}")
        scale = self.v2_scale(datatype, where)
        low, high = self._bounds(scale)
        if not (low <= array.min() and array.max() <= high):       # NaN fails both comparisons
            bad = ~np.isfinite(array) | (array < low) | (array > high)
            index = int(np.flatnonzero(bad.ravel())[0])
            raise InputError((where,), f"{datatype} pixel values must be finite and lie in "
                                       f"[{low:g}, {high:g}]; found {array.ravel()[index]} at flat index "
                                       f"{index}")
        out = np.empty((array.shape[0], self.steps, self.channels), dtype=np.float32)
        out[...] = array.reshape(out.shape)
        out /= np.float32(scale)
        out -= self.mean
        out /= self.std
        return out

    def v2_scale(self, datatype: str, where: str) -> float:
        """The value of full intensity of ``pixels`` sent as ``datatype`` (UINT8: 255, FP32: 1)."""
        scale = self.V2_SCALES.get(datatype)
        if scale is None:
            raise InputError((where,), f"datatype {datatype} is not accepted: UINT8 (grey values 0–255) or "
                                       "FP32 (values in [0, 1])")
        return scale

    def v2_outputs(self, probabilities: np.ndarray, requested: set[str] | None
                   ) -> list[tuple[str, np.ndarray]]:
        """The requested outputs (all four when ``requested`` is None, the per-step ones only when the
        job ran every step) from ``run_batch``'s probabilities."""
        final = probabilities[:, -1] if probabilities.ndim == 3 else probabilities
        outputs = {"label": final.argmax(axis=1).astype(np.int64), "probabilities": final}
        if probabilities.ndim == 3:
            labels = probabilities.argmax(axis=2)
            outputs["sequence_labels"] = labels.astype(np.int64)
            outputs["sequence_confidence"] = np.take_along_axis(probabilities, labels[..., None], 2)[..., 0]
        names = list(outputs) if requested is None else [n for n in outputs if n in requested]
        return [(name, outputs[name]) for name in names]

    # -- encode -----------------------------------------------------------------------------------
    def encode(self, probabilities: np.ndarray, top_k: int, return_sequence: bool) -> list[dict]:
        """Per image: label, class name, probabilities, the top-k classes and the per-step sequence."""
        final = probabilities[:, -1] if probabilities.ndim == 3 else probabilities
        predictions = []
        for row in range(final.shape[0]):
            probs = final[row].tolist()
            # a Python sort of a handful of classes: no numpy call, so no GIL hand-off to the model thread
            best = sorted(range(len(probs)), key=lambda i: -probs[i])[:top_k]
            label = best[0]
            prediction = {
                "label": label,
                "class_name": self.class_name(label),
                "probabilities": probs,
                "top_k": [{"label": i, "class_name": self.class_name(i), "probability": probs[i]}
                          for i in best],
                "sequence": None,
            }
            if return_sequence:
                steps = probabilities[row]                             # (T, classes)
                labels = steps.argmax(axis=1)
                prediction["sequence"] = {"labels": labels.tolist(),
                                          "confidence": steps[np.arange(len(labels)), labels].tolist()}
            predictions.append(prediction)
        return predictions
