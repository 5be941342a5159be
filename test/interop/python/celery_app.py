"""A small Celery app used by the interop tests, in both roles.

As a client (celery_client.py) its tasks are only stubs to call .delay()/.apply_async() on: a qworker
worker runs them. As a real worker (`python3 -m celery -A celery_app worker --pool=solo`) it executes
the messages `qworker send --celery` writes. Broker and result backend: $CELERY_BROKER_URL.
"""
import os

from celery import Celery

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6399/0")

app = Celery("interop", broker=BROKER, backend=BROKER)
app.conf.update(
    accept_content=["json"],
    task_serializer="json",
    result_serializer="json",
    timezone="UTC",
    enable_utc=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@app.task(name="tasks.add")
def add(a, b):
    return a + b


@app.task(name="tasks.greet")
def greet(name, greeting="Hello"):
    return f"{greeting}, {name}!"


@app.task(name="tasks.echo")
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="tasks.boom")
def boom(message="boom"):
    raise ValueError(message)


@app.task(name="tasks.retry_once", bind=True, max_retries=3)
def retry_once(self, value):
    if self.request.retries == 0:
        raise self.retry(countdown=1)
    return {"value": value, "retries": self.request.retries}


@app.task(name="tasks.type_error")
def type_error():
    raise TypeError("bad type")


@app.task(name="tasks.range_error")
def range_error():
    raise ValueError("too big")


@app.task(name="tasks.slow")
def slow(ms, tag):
    return tag
