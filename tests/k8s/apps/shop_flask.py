"""The shop as a plain Flask app, with no Profilis code: the injected agent instruments it."""

from flask import Flask

app = Flask(__name__)


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> dict[str, int]:
    return {"order": order_id}
