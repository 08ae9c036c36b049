import asyncio, json, sys, time
import numpy as np
sys.path.insert(0, "bench")   # run from the repository root
from service_load import RawHTTPClient
body = json.dumps({"model": "mnist", "scale": 255, "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
async def main(seconds):
    c = RawHTTPClient("http://127.0.0.1:8765", body); await c.connect()
    lat = []; t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        s = time.perf_counter(); st, b = await c.classify(); lat.append(time.perf_counter() - s)
        assert st == 200, b
    print(len(lat), "p50 ms", round(float(np.median(lat)) * 1000, 2))
asyncio.run(main(float(sys.argv[1])))
