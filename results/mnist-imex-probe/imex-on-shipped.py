"""The shipped MNIST model's weights run with the IMEX step (no training): does the 97.27 % classifier
survive the change of discretisation, i.e. would a fine-tune under IMEX start ahead? First 1000 test
images, one thread. Run: python results/mnist-imex-probe/imex-on-shipped.py"""
import dataclasses

import torch

from model import AFRNN
from training.cli import resolve
from training.components import load_initial_weights, load_splits
from training.tasks import get_task
from model.paper import build_model

torch.set_num_threads(1)
cfg, run, _ = resolve(["--task", "mnist", "--model", "afrnn", "--data-dir", "../shared/data"])
splits = load_splits(get_task("mnist"), cfg)
euler = build_model(cfg.model_config_object())
load_initial_weights(euler, "checkpoints/mnist.json")
imex = AFRNN(dataclasses.replace(euler.config, discretisation="imex"))
imex.load_state_dict(euler.state_dict())
x, y = splits.test.batch(torch.arange(1000), torch.device("cpu"))
with torch.no_grad():
    for name, model in (("euler (as shipped)", euler.eval()), ("imex", imex.eval())):
        accuracy = (model(x).argmax(-1) == y).float().mean().item()
        print(f"{name}: accuracy {accuracy:.3f} on the first 1000 test images", flush=True)
