"""What a checkpoint promises a server: the manifest schema, the task and variant names, the input and
output specs of each task, and TorchScript export / verified load.

Training writes artifacts with this package and the service reads them with it; it imports ``model``
only, never ``training`` or ``service`` (docs/architecture.md).
"""
