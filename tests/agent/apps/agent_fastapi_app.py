"""A FastAPI app on SQLite as its authors wrote it: no Profilis anywhere, the agent adds it.

Run from a fresh virtualenv (fastapi, uvicorn, gunicorn, sqlalchemy). ``/items/{item_id}`` is
a sync endpoint, so its query runs in Starlette's thread pool: its DB event still belongs to
the request's trace.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from sqlalchemy import create_engine, text

engine = create_engine(f"sqlite:///{os.environ['AGENT_TEST_DB']}")
app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, Any]:
    return {"pid": os.getpid()}


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name FROM users WHERE id = :id"), {"id": item_id}).first()
    return {"pid": os.getpid(), "name": None if row is None else row[0]}
