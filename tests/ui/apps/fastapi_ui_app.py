"""A FastAPI app with the dashboard as a mounted ASGI app: open at /_profilis, with a token
at /_profilis_private. Served by uvicorn in test_servers.py."""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from profilis import profile
from profilis.fastapi import instrument_fastapi
from profilis.sqlalchemy import instrument_engine
from profilis.ui.asgi import make_ui_asgi_app
from tests.ui.apps.common import TOKEN, pipeline

stats, collector, emitter = pipeline()
engine = create_async_engine(f"sqlite+aiosqlite:///{os.environ['PROFILIS_TEST_DB']}")
instrument_engine(engine, emitter)

app = FastAPI()
app.mount("/_profilis_private", make_ui_asgi_app(stats, ui_auth_token=TOKEN))
app.mount("/_profilis", make_ui_asgi_app(stats))


@profile(emitter, name="fastapi_ui_app.load_item")
async def load_item(item_id: int) -> str | None:
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT name FROM users WHERE id = {item_id}"))
        row = result.first()
    return None if row is None else str(row[0])


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, object]:
    return {"id": item_id, "name": await load_item(item_id)}


@app.get("/work/{ms}")
async def work(ms: int) -> dict[str, int]:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("the endpoint failed")


instrument_fastapi(app, emitter=emitter, exclude_routes=["/_profilis"])
