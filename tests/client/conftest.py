"""The live-server fixtures of tests/service/conftest.py (real ``python -m service`` processes), shared
by loading that file: ``start_service``, ``export_model`` and ``read_metric``."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_service_conftest", Path(__file__).resolve().parents[1] / "service" / "conftest.py")
_service_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_service_conftest)

start_service = _service_conftest.start_service
export_model = _service_conftest.export_model
read_metric = _service_conftest.read_metric
ServiceProcess = _service_conftest.ServiceProcess
