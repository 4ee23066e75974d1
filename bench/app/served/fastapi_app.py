"""The FastAPI app the uvicorn stack of bench/app serves: the same three routes as
flask_app.py (the SQLite one is a sync route, so it runs in Starlette's thread pool).
"""

import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from sqlalchemy import create_engine, text

engine = create_engine(f"sqlite:///{os.environ['BENCH_APP_DB']}")
app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return "ok"


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/users/{user_id}")
def user(user_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).one()
    return {"id": user_id, "name": name[0]}
