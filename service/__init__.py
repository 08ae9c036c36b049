"""FastAPI serving microservice for AFRNN checkpoints: ``create_app`` in ``service.app``, CLI in
``service.__main__`` (``afrnn-serve``)."""
