"""ClassifierAPI.decode against the normalisation formula, computed here independently in float32:
x = (pixel / scale − mean_c) / std_c, channels interleaved per pixel; and each rule's 422 message."""

import numpy as np
import pytest
import torch

from artifact.manifest import Manifest
from service.errors import InputError
from service.tasks.classifier import ClassifierAPI, no_booleans

from .conftest import tiny_model


@pytest.fixture(scope="module", params=["mnist", "cifar10"])
def api(request, manifest_fields):
    model = tiny_model(request.param, 0)
    manifest = Manifest.model_validate({**manifest_fields(model, request.param, request.param),
                                        "artifact": {"file": "m.pt", "sha256": "0" * 64, "bytes": 0}})
    return ClassifierAPI(manifest, torch.jit.script(model), torch.device("cpu"))


def formula(pixels: np.ndarray, scale: float, api: ClassifierAPI) -> np.ndarray:
    mean = np.asarray(api.manifest.input.normalization_mean, dtype=np.float32)
    std = np.asarray(api.manifest.input.normalization_std, dtype=np.float32)
    unit = pixels.reshape(api.steps, api.channels).astype(np.float32) / np.float32(scale)
    return (unit - mean) / std


@pytest.mark.parametrize("booleans_possible", [True, False])
def test_pixel_lists_decode_to_the_formula_bit_for_bit(api, booleans_possible):
    """Both paths: the general one, and 8-bit integer lists read by ``bytes`` when the body held no
    booleans (integers, floats, and 0/1 integers at scale 1)."""
    rng = np.random.default_rng(0)
    size = api.steps * api.channels
    for scale, images in ((255, [rng.integers(0, 256, size) for _ in range(3)]),
                          (1, [rng.random(size) for _ in range(3)]),
                          (1, [rng.integers(0, 2, size) for _ in range(3)])):
        x = api.decode([image.tolist() for image in images], scale, [("images", i) for i in range(3)],
                       booleans_possible=booleans_possible)
        assert x.dtype == np.float32 and x.shape == (3, api.steps, api.channels)
        for got, image in zip(x, images, strict=True):
            np.testing.assert_array_equal(got, formula(image, scale, api))


@pytest.mark.parametrize("value, rule", [
    (float("nan"), "finite numbers; found nan at flat index 5"),
    (float("inf"), "finite numbers; found inf at flat index 5"),
    (256, "must lie in [0, 255] for scale 255; found 256 at flat index 5"),
    (-1, "must lie in [0, 255] for scale 255; found -1 at flat index 5")])
@pytest.mark.parametrize("booleans_possible", [True, False])
def test_each_bad_value_is_named_with_its_rule_and_index(api, value, rule, booleans_possible):
    pixels = [0] * (api.steps * api.channels)
    pixels[5] = value
    with pytest.raises(InputError) as error:
        api.decode([pixels], 255, [("pixels",)], booleans_possible=booleans_possible)
    assert rule in error.value.msg and error.value.loc == ("pixels",)


@pytest.mark.parametrize("booleans_possible", [True, False])
def test_integers_out_of_the_value_range_of_the_scale_are_refused_on_both_paths(api, booleans_possible):
    """0–255 integers at scale 1: bytes() reads them, and the range rule [0, 1] still applies."""
    pixels = [0] * (api.steps * api.channels)
    pixels[7] = 2
    with pytest.raises(InputError) as error:
        api.decode([pixels], 1, [("pixels",)], booleans_possible=booleans_possible)
    assert "must lie in [0, 1] for scale 1; found 2 at flat index 7" in error.value.msg


def test_the_boolean_screen_is_conservative():
    """A body with a true/false literal anywhere, or those letters in a string, is not screened."""
    assert no_booleans(b'{"pixels": [0, 1, 255], "scale": 255}')
    assert not no_booleans(b'{"pixels": [0, true], "scale": 255}')
    assert not no_booleans(b'{"pixels": [0, 1], "return_sequence": false}')
    assert not no_booleans(b'{"model": "untrue", "pixels": [0, 1]}')
