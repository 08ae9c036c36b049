"""The shipped MNIST model with k explicit-Euler substeps per pixel, z ← z + (ε/k)·tanh(B z + u_t),
i.e. the same ODE integrated more finely (step radius √((1 − εγ/k)² + (ε‖A‖₂/k)²) on the linear part).
First 1000 test images, one thread. Run: python results/mnist-step-bound-probe/substeps-on-shipped.py"""
import time
import torch
from training.cli import resolve
from training.components import load_initial_weights, load_splits
from training.tasks import get_task
from model.paper import build_model
torch.set_num_threads(1)
cfg, run, _ = resolve(["--task", "mnist", "--model", "afrnn", "--data-dir", "../shared/data"])
splits = load_splits(get_task("mnist"), cfg)
m = build_model(cfg.model_config_object()); load_initial_weights(m, "checkpoints/mnist.json"); m.eval()
x, y = splits.test.batch(torch.arange(1000), torch.device("cpu"))
with torch.no_grad():
    B = m.coupling_matrix()
    drive = m.input_drive(x)                        # (N, T, D)
    sigma = torch.linalg.matrix_norm(m.coupling_blocks(), 2).item()
    print(f"eps {m.epsilon} ||A||2 {sigma:.3f} eps||A|| {m.epsilon * sigma:.3f}", flush=True)
    for k in (1, 2, 4, 8):
        t = time.time()
        z = m.initial_state(x.shape[0])
        h = m.epsilon / k
        for step in range(drive.shape[1]):
            u = drive[:, step]
            for _ in range(k):
                z = z + h * torch.tanh(z @ B.t() + u)
        acc = (m.readout(z).argmax(-1) == y).float().mean().item()
        print(f"k {k}: accuracy {acc:.3f}, linear-part step radius bound "
              f"{((1 - m.epsilon * m.gamma / k) ** 2 + (m.epsilon * sigma / k) ** 2) ** 0.5:.4f}, "
              f"{time.time() - t:.0f} s", flush=True)
