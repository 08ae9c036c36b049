"""Issue 32, session 16: the MNIST /classify body (784 integers) parsed by pydantic-core (the service's
parser), orjson, msgspec and the standard library; best of 5 repeats, µs a parse. orjson and msgspec
are not dependencies of the service: install them aside,
    pip install --target /tmp/jppkg orjson msgspec
    PYTHONPATH=/tmp/jppkg python results/bench-s16/json_parsers.py
and what each does with NaN and a 65-bit integer (the service accepts both, then names them in a 422).
Output: json-parsers.out."""
import json
import timeit

import msgspec
import numpy as np
import orjson
import pydantic_core

pixels = np.random.default_rng(0).integers(0, 256, 784).tolist()
raw = json.dumps({"model": "mnist", "scale": 255, "pixels": pixels}).encode()
decoder = msgspec.json.Decoder()
parsers = {"pydantic_core.from_json": pydantic_core.from_json, "orjson.loads": orjson.loads,
           "msgspec.json.Decoder": decoder.decode, "json.loads": json.loads}
result = {}
for name, parse in parsers.items():
    result[name] = round(min(timeit.repeat(lambda p=parse: p(raw), number=3000, repeat=5)) / 3000 * 1e6, 2)
    edge = []
    for text in (b'[NaN]', b'[36893488147419103232]'):
        try:
            edge.append(repr(parse(text)))
        except Exception as error:                       # noqa: BLE001 (what each parser raises)
            edge.append(type(error).__name__)
    print(f"{name:26s} {result[name]:6.2f} µs   NaN → {edge[0]}   2**65 → {edge[1]}", flush=True)
print(json.dumps(result))
