import torch, time
from training.cli import resolve
from training.components import load_initial_weights, load_splits
from training.tasks import get_task
from model.paper import build_model
torch.set_num_threads(1)
cfg, run, _ = resolve(["--task", "mnist", "--model", "afrnn", "--data-dir", "../shared/data", "--step-bound", "1"])
task = get_task("mnist"); splits = load_splits(task, cfg)
m = build_model(cfg.model_config_object()); load_initial_weights(m, "checkpoints/mnist.json"); m.eval()
A = m.coupling_blocks().detach()
sig = torch.linalg.matrix_norm(A, 2).item()
print("eps", m.epsilon, "gamma", m.gamma if hasattr(m,'gamma') else None, "||A||2", sig, "eps||A||", m.epsilon*sig, flush=True)
x, y = splits.test.batch(torch.arange(1000), torch.device("cpu"))
for beta in [100.0, 0.8, 0.5, 0.3, 0.2, 0.1]:
    m.step_bound = beta
    t=time.time()
    with torch.no_grad():
        out = m(x)
    out = out if out.dim()==2 else out[:, -1]
    print(beta, (out.argmax(-1)==y).float().mean().item(), f"{time.time()-t:.1f}s", flush=True)
