"""One router per concern (FastAPI full-stack template layout)."""
