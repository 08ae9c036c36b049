import ctypes, random, torch, sys
sys.path.insert(0, ".")   # run from the repository root
from artifact.export import load_exported
from service.memory import malloc_trim, resident_bytes
torch.set_num_threads(1)
def anon():
    for l in open("/proc/self/status"):
        if l.startswith("RssAnon"): return int(l.split()[1]) // 1024
module, manifest = load_exported("checkpoints/mnist.json")[:2]
x64 = torch.randn(64, 784, 1)
with torch.inference_mode():
    for _ in range(3): module(x64[:1], None, False)
    module(x64, None, False)
malloc_trim(); print("warm", anon(), "MiB anon", flush=True)
sizes = list(range(1, 65)); random.Random(0).shuffle(sizes)
for sweep in range(3):
    with torch.inference_mode():
        for n in sizes:
            module(x64[:n], None, False)
    malloc_trim(); print("after sweep", sweep, anon(), "MiB anon", flush=True)
