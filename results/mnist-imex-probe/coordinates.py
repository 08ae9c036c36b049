"""How far the IMEX probe's carried state w = (I − ε/2·B) z is from the paper's z: ε‖A‖₂ and the
condition number of I − ε/2·B, which bounds the ratio of ‖∂z_T/∂z_0‖ to the report's ‖∂w_T/∂w_0‖.
Run: python results/mnist-imex-probe/coordinates.py"""
import torch

from artifact.export import load_exported

model, _ = load_exported("results/mnist-imex-probe/mnist-imex.json")
with torch.no_grad():
    B = model.coupling_matrix().double()
    eps = float(model.epsilon)
    eye = torch.eye(B.shape[0], dtype=torch.float64)
    singular = torch.linalg.svdvals(eye - 0.5 * eps * B)
    A = B + float(model.gamma) * eye
print(f"eps ||A||_2 = {eps * float(torch.linalg.matrix_norm(A, 2)):.3f}; "
      f"cond(I - eps/2 B) = {float(singular[0] / singular[-1]):.4f}")
