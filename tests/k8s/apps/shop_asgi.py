"""The shop as a plain FastAPI app, with no Profilis code: the injected agent instruments it."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    return {"order": order_id}
