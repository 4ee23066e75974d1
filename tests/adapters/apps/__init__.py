"""Apps served by real servers (gunicorn, uvicorn) in the adapter tests."""
