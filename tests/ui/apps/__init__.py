"""Apps serving the dashboard under real servers (gunicorn, uvicorn) in the UI tests."""
