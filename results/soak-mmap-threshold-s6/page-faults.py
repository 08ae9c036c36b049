"""Minor page faults per MNIST forward (ClassifierAPI.predict) with glibc's mmap threshold pinned at argv[1]
bytes (0: glibc's dynamic rule): for th in 0 131072 1048576 4194304; do python <this> $th; done"""
import sys, resource, numpy as np, torch
torch.set_num_threads(1)
from service.memory import pin_mmap_threshold
if sys.argv[1] != "0": pin_mmap_threshold(int(sys.argv[1]))
from artifact.export import load_exported
from service.tasks.classifier import ClassifierAPI
module, manifest = load_exported("checkpoints/mnist.json")
api = ClassifierAPI(manifest, module, torch.device("cpu")); api.warmup(64)
out = []
with torch.inference_mode():
    for b in (1, 8, 64):
        x = torch.from_numpy(np.random.rand(b, 784, 1).astype(np.float32))
        api.predict(x, False)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20): api.predict(x, False)
        out.append((b, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20))
print(sys.argv[1], "minor page faults per forward (batch, faults):", out)
