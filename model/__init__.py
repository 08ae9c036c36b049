"""AFRNN model library: the networks, the fused recurrence and (in ``model.stability``) the analysis."""

from model.afrnn import AFRNN, AFRNNConfig
from model.lstm import LSTMBaseline, LSTMConfig
from model.paper import (
    PAPER_PARAMETER_COUNTS,
    PAPER_TASKS,
    VARIANTS,
    build_model,
    count_parameters,
    paper_config,
    paper_model,
)

__all__ = [
    "AFRNN", "AFRNNConfig", "LSTMBaseline", "LSTMConfig", "PAPER_PARAMETER_COUNTS", "PAPER_TASKS",
    "VARIANTS", "build_model", "count_parameters", "paper_config", "paper_model",
]
