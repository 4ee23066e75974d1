"""The FastAPI app of the uvicorn tests: ProfilisASGI, aiosqlite, streams, a mounted app.

Configured like ``flask_app``: ``PROFILIS_TEST_EVENTS_DIR``, ``PROFILIS_TEST_FLAGS_DIR`` and
``PROFILIS_TEST_DB``. The lifespan writes marker files next to the events.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from profilis import AsyncCollector, Emitter, profile
from profilis.fastapi import instrument_fastapi
from profilis.sqlalchemy import instrument_engine
from tests.adapters.apps.sink import JsonLinesSink

EVENTS_DIR = Path(os.environ["PROFILIS_TEST_EVENTS_DIR"])
FLAGS_DIR = Path(os.environ["PROFILIS_TEST_FLAGS_DIR"])

collector: AsyncCollector[dict[str, object]] = AsyncCollector(
    JsonLinesSink(EVENTS_DIR), flush_interval=0.02
)
emitter = Emitter(collector)
engine = create_async_engine(f"sqlite+aiosqlite:///{os.environ['PROFILIS_TEST_DB']}")
instrument_engine(engine, emitter)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    (EVENTS_DIR / "lifespan-startup").write_text(str(os.getpid()))
    yield
    await engine.dispose()
    (EVENTS_DIR / "lifespan-shutdown").write_text(str(os.getpid()))


async def wait_for_flag(name: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not (FLAGS_DIR / name).exists():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@profile(emitter, name="fastapi_app.load_item")
async def load_item(item_id: int) -> str | None:
    async with engine.connect() as conn:
        # A literal in the SQL text on purpose: the DB event must show it redacted.
        result = await conn.execute(text(f"SELECT name FROM users WHERE id = {item_id}"))
        row = result.first()
    return None if row is None else str(row[0])


async def thing(request: Request) -> JSONResponse:
    params = request.path_params
    return JSONResponse({"tenant": params["tenant"], "thing": params["thing_id"]})


app = FastAPI(lifespan=lifespan)
app.mount("/tenants/{tenant}", Starlette(routes=[Route("/things/{thing_id:int}", thing)]))


@app.get("/health")
async def health() -> str:
    return "ok"


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, object]:
    return {"id": item_id, "name": await load_item(item_id)}


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("the endpoint failed")


@app.post("/upload")
async def upload(request: Request) -> dict[str, object]:
    body = await request.body()
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.get("/stream/{name}")
async def stream(name: str) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        yield b"first\n"
        yield b"second\n" if await wait_for_flag(name) else b"timed out\n"

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/sse/{name}")
async def sse(name: str) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        yield b"event: tick\ndata: one\n\n"
        yield b"data: two\n\n" if await wait_for_flag(name) else b"data: timed out\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")


@app.get("/background/{name}")
async def background(name: str, tasks: BackgroundTasks) -> dict[str, str]:
    async def after_response() -> None:
        # Runs after the response went out, still inside the request's span.
        if await wait_for_flag(name):
            await load_item(1)
        (EVENTS_DIR / f"background-done-{name}").touch()

    tasks.add_task(after_response)
    return {"queued": name}


instrument_fastapi(app, emitter=emitter, exclude_routes=["/health"])
