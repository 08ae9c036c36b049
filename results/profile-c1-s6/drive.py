import httpx, json, time, numpy as np, sys
body = json.dumps({"model": "mnist", "scale": 255, "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
c = httpx.Client(base_url="http://127.0.0.1:8765")
t = time.time(); n = 0; lat = []
while time.time() - t < float(sys.argv[1]):
    s = time.perf_counter(); r = c.post("/classify", content=body, headers={"content-type": "application/json"}); lat.append(time.perf_counter() - s); n += 1
print(n, np.median(lat) * 1000)
