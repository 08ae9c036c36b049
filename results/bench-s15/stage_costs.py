"""Issue 32, session 15: the route's own steps for one MNIST image, in a tight loop (warm caches, no
server): parse the 784-number JSON body, validate it, np.asarray of the pixel list, the boolean check,
the whole decode, the encode and the response. Best of 5 repeats, µs a call.
    python results/bench-s15/stage_costs.py   (session 16: > results/bench-s16/stage-costs.out)"""
import json
import sys
import timeit
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from afrnn_schemas import ClassifyResponse  # noqa: E402
from artifact.export import load_exported  # noqa: E402
from model.inference import cpu_flags  # noqa: E402
from service.api.json_body import parse_json  # noqa: E402
from service.api.routes import classify  # noqa: E402
from service.tasks.classifier import ClassifierAPI, _leaf_types, no_booleans  # noqa: E402

pixels = np.random.default_rng(0).integers(0, 256, 784).tolist()
raw = json.dumps({"model": "mnist", "scale": 255, "pixels": pixels}).encode()
field = classify.router.routes[0].body_field
module, manifest = load_exported(Path(__file__).resolve().parents[2] / "checkpoints" / "mnist.json")
api = ClassifierAPI(manifest, module, torch.device("cpu"))
value = parse_json(raw)
body, _ = field.validate(value, {}, loc=("body",))
probabilities = np.random.default_rng(1).random((1, 10)).astype(np.float32)
predictions = api.encode(probabilities, 1, False)


def respond() -> str:
    return ClassifyResponse(model="mnist", version="1", predictions=predictions, latency_ms=1.0,
                            queue_ms=1.0, inference_ms=1.0, batch_size=1).model_dump_json()


stages = {
    "parse_json": lambda: parse_json(raw),
    "validate body": lambda: field.validate(value, {}, loc=("body",)),
    "np.asarray(pixels)": lambda: np.asarray(pixels),
    "boolean check (_leaf_types)": lambda: _leaf_types(pixels),
    "decode (all of it)": lambda: api.decode(body.image_list, body.scale, body.image_locs),
    # session 16: the route screens the body for true/false, then 8-bit integer lists take bytes()
    "boolean screen (no_booleans)": lambda: no_booleans(raw),
    "decode, 8-bit path": lambda: api.decode(body.image_list, body.scale, body.image_locs,
                                             booleans_possible=False),
    "encode": lambda: api.encode(probabilities, 1, False),
    "response model + JSON": respond,
}
result = {"cpu": cpu_flags()[0]}
for name, fn in stages.items():
    fn()
    result[name] = round(min(timeit.repeat(fn, number=2000, repeat=5)) / 2000 * 1e6, 1)
    print(f"{name:30s} {result[name]:7.1f} µs", flush=True)
print(json.dumps(result))
