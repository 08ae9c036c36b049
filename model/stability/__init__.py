"""Stability analysis of AFRNN / LSTM models through their exported interface (eager or TorchScript).

    from model.stability import stability_report, StabilityReport, SECTIONS
    report = stability_report(module, x)            # one sequence (T, C), already normalised
    report.summary.verdict                          # 'stable' | 'marginal' | 'unstable'
    report.model_dump_json()                        # what the service returns

Modules: ``report`` (the pydantic schema), ``jacobians`` (step Jacobians and their products),
``spectrum`` (Theorem 3 and the spectrum of D_t B), ``lyapunov`` (QR method), ``analysis`` (the
report and its verdict rules), ``plots`` (matplotlib PNGs of paper Figs. 2–4 and eigenvalues).
"""

from afrnn_schemas.report import StabilityReport
from model.stability.analysis import FIGURE_SECTIONS, SECTIONS, StabilityArgumentError, stability_report

__all__ = ["FIGURE_SECTIONS", "SECTIONS", "StabilityArgumentError", "StabilityReport", "stability_report"]
