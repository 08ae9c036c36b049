"""The stability report on /models/<name>/stability's default input (s0 = 0 in the model's encoding)."""
import sys
import torch
from artifact.export import load_exported
from model.stability import stability_report
from service.tasks.pendulum import PendulumAPI
for path in sys.argv[1:]:
    module, manifest = load_exported(path)
    api = PendulumAPI(manifest, module, torch.device("cpu"))
    x = api.network_input(torch.zeros(1, 4), api.trained_steps)[0]
    s = stability_report(module, x).summary
    print(path, s.verdict, "rho", round(s.max_step_spectral_radius, 4), "lambda1", round(s.top_lyapunov_exponent, 4),
          "grad", round(s.gradient_norm_ratio, 2), "theorem", s.theorem_holds)
