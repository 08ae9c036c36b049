"""Data sets, training, evaluation and TorchScript export for AFRNN models."""
