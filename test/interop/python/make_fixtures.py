#!/usr/bin/python3
"""Capture real Celery/kombu wire data for qworker's unit tests.

Run with Debian's system interpreter (the python3-celery/-kombu/-redis packages live there):

    /usr/bin/python3 test/interop/python/make_fixtures.py [OUT_DIR]

OUT_DIR defaults to test/fixtures/celery. The script starts its own throw-away redis-server on a free
loopback port (never the system Redis on 6379), lets a real Celery app publish tasks through kombu and
store results through celery.backends.redis, then reads the raw bytes back out of Redis:

* messages/*.json  - every list entry LRANGEd from kombu's queue lists, with the list key it landed in
* results/*.json   - every celery-task-meta-* value as stored by SETEX, plus the PUBLISHed payload and TTL
* layout.json      - binding-set members and other key names observed

Nothing here is hand-written wire data: the JSON fixtures are whatever the installed libraries produced.
Task ids are fixed so tests can refer to them; timestamps are whatever the clock said during the run,
and each fixture records `sent_at` (epoch seconds just before the call) so tests can check relative times.
"""
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import celery
import kombu
import redis
from celery import Celery, chain, group
from celery.exceptions import NotRegistered, TaskRevokedError

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(REPO, "test", "fixtures", "celery")
SEP = "\x06\x16"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="qworker-fixtures-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    for _ in range(100):
        try:
            client.ping()
            return proc, port, workdir, client
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def make_app(port, protocol=2, name="fixtures"):
    url = f"redis://127.0.0.1:{port}/0"
    app = Celery(name, broker=url, backend=url)
    app.conf.update(
        task_protocol=protocol,
        result_expires=3600,
        broker_connection_retry_on_startup=False,
        timezone="UTC",
        enable_utc=True,
    )

    @app.task(name="tasks.add")
    def add(x, y):
        return x + y

    @app.task(name="tasks.echo")
    def echo(*args, **kwargs):
        return [args, kwargs]

    return app


def list_keys(client):
    return sorted(k for k in client.keys("*") if client.type(k) == "list")


def drain_lists(client):
    """Return [(key, raw)] for every entry of every list, oldest first, and empty the lists."""
    out = []
    for key in list_keys(client):
        for raw in reversed(client.lrange(key, 0, -1)):  # LPUSH puts new entries on the left
            out.append((key, raw))
        client.delete(key)
    return out


def write(rel, data):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


PROVENANCE = {
    "generator": "test/interop/python/make_fixtures.py",
    "celery": celery.__version__,
    "kombu": kombu.__version__,
    "redis_py": redis.__version__,
    "python": sys.version.split()[0],
}


def capture_message(client, name, call, fn):
    """Run fn (which publishes exactly one or more messages) and store every list entry it produced."""
    drain_lists(client)
    sent_at = time.time()
    fn()
    entries = drain_lists(client)
    if not entries:
        raise SystemExit(f"{name}: nothing was published")
    write(f"messages/{name}.json", {
        "provenance": PROVENANCE,
        "call": call,
        "sent_at": sent_at,
        "entries": [{"key": key, "raw": raw} for key, raw in entries],
    })
    return entries


class ShippingError(Exception):
    """A module-level custom exception (exc_module will be __main__)."""


class Outer:
    class InnerError(Exception):
        pass


class Ctx:
    """Minimal request stand-in: the attributes _get_result_meta reads."""

    def __init__(self, group=None, parent_id=None):
        self.group = group
        self.parent_id = parent_id
        self.chord = None
        self.children = []
        self.ignore_result = False
        self.errbacks = None
        self.callbacks = None
        self.chain = None


def capture_result(client, backend, name, call, fn, task_id):
    key = f"celery-task-meta-{task_id}"
    client.delete(key)
    pubsub = client.pubsub()
    pubsub.subscribe(key)
    pubsub.get_message(timeout=1)  # subscribe confirmation
    before = dt.datetime.utcnow()
    fn()
    raw = client.get(key)
    ttl = client.ttl(key)
    published = None
    for _ in range(20):
        msg = pubsub.get_message(timeout=0.5)
        if msg and msg["type"] == "message":
            published = msg["data"]
            break
    pubsub.close()
    # What a Python client makes of it: the same decoding AsyncResult.get() uses.
    meta = backend.decode_result(raw)
    res = meta["result"]
    if isinstance(res, BaseException):
        python_view = {"kind": "exception", "class": f"{type(res).__module__}.{type(res).__qualname__}",
                       "args": [repr(a) for a in res.args], "str": str(res)}
    else:
        python_view = {"kind": "value", "repr": repr(res)}
    write(f"results/{name}.json", {
        "provenance": PROVENANCE,
        "call": call,
        "stored_after_utc": before.isoformat(),
        "key": key,
        "ttl": ttl,
        "raw": raw,
        "published": published,
        "python_view": python_view,
    })


def main():
    if os.path.isdir(OUT):
        for sub in ("messages", "results"):
            shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
    proc, port, workdir, client = start_redis()
    try:
        app = make_app(port, protocol=2)
        add = app.tasks["tasks.add"]
        echo = app.tasks["tasks.echo"]
        # Make sure the producer connection exists so declarations happen on first publish.
        ID = "6f25c36f-62bf-4767-a722-50ed79640001"

        def tid(n):
            return f"6f25c36f-62bf-4767-a722-{n:012d}"

        capture_message(client, "v2-basic", "add.apply_async((2, 3), task_id=ID)",
                        lambda: add.apply_async((2, 3), task_id=ID))
        capture_message(client, "v2-delay", "add.delay(2, 3)  (random id)",
                        lambda: add.delay(2, 3))
        capture_message(
            client, "v2-unicode-nested",
            "echo.apply_async(args, kwargs) with unicode, nested JSON, floats, nulls and booleans",
            lambda: echo.apply_async(
                ("héllo wörld ✓ 日本語 🎉", {"nested": {"list": [1, 2.5, None, True, False], "empty": {}}}, [], -7),
                {"user": {"name": "Zoë", "tags": ["a", "b"]}, "limit": 10, "ratio": 0.125, "flag": None,
                 "quote": "she said \"hi\"\n\ttab"},
                task_id=tid(2)))
        capture_message(client, "v2-countdown", "add.apply_async((1, 1), countdown=30)",
                        lambda: add.apply_async((1, 1), countdown=30, task_id=tid(3)))
        capture_message(client, "v2-eta", "add.apply_async((1, 2), eta=datetime(2030,1,2,3,4,5,678901,utc))",
                        lambda: add.apply_async(
                            (1, 2), task_id=tid(4),
                            eta=dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)))
        capture_message(client, "v2-eta-offset",
                        "add.apply_async((1, 3), eta=datetime(2030,1,2,5,4,5,tz=+02:00))",
                        lambda: add.apply_async(
                            (1, 3), task_id=tid(5),
                            eta=dt.datetime(2030, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))))
        capture_message(client, "v2-expires-seconds", "add.apply_async((2, 2), expires=60)",
                        lambda: add.apply_async((2, 2), expires=60, task_id=tid(6)))
        capture_message(client, "v2-expires-datetime",
                        "add.apply_async((2, 3), expires=datetime(2031,6,7,8,9,10,tz=utc))",
                        lambda: add.apply_async(
                            (2, 3), task_id=tid(7),
                            expires=dt.datetime(2031, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)))
        for pri in range(10):
            capture_message(client, f"v2-priority-{pri}", f"add.apply_async((0, {pri}), priority={pri})",
                            lambda pri=pri: add.apply_async((0, pri), priority=pri, task_id=tid(100 + pri)))
        capture_message(client, "v2-queue-emails", "add.apply_async((5, 5), queue='emails')",
                        lambda: add.apply_async((5, 5), queue="emails", task_id=tid(8)))
        capture_message(client, "v2-timelimit", "add.apply_async((1, 0), time_limit=10, soft_time_limit=5)",
                        lambda: add.apply_async((1, 0), time_limit=10, soft_time_limit=5, task_id=tid(9)))
        capture_message(client, "v2-ignore-result", "add.apply_async((3, 3), ignore_result=True)",
                        lambda: add.apply_async((3, 3), ignore_result=True, task_id=tid(10)))
        capture_message(client, "v2-shadow", "add.apply_async((4, 4), shadow='add-renamed')",
                        lambda: add.apply_async((4, 4), shadow="add-renamed", task_id=tid(11)))
        capture_message(client, "v2-link", "add.apply_async((1, 2), link=add.s(10), link_error=echo.si('failed'))",
                        lambda: add.apply_async((1, 2), link=add.s(10), link_error=echo.si("failed"),
                                                task_id=tid(12)))
        capture_message(client, "v2-chain", "chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()",
                        lambda: chain(add.s(1, 2), add.s(3), add.s(4)).apply_async())
        capture_message(client, "v2-group", "group(add.s(1, 2), add.s(3, 4)).apply_async()",
                        lambda: group(add.s(1, 2), add.s(3, 4)).apply_async())
        capture_message(client, "v2-send-task-kwargs",
                        "app.send_task('tasks.echo', kwargs={'a': 1, 'b': [2]}, retries=2, headers={'x-custom': 'yes'})",
                        lambda: app.send_task("tasks.echo", kwargs={"a": 1, "b": [2]}, retries=2,
                                              headers={"x-custom": "yes"}, task_id=tid(13)))
        capture_message(client, "v2-pickle", "add.apply_async((1, 2), serializer='pickle')",
                        lambda: add.apply_async((1, 2), serializer="pickle", task_id=tid(14)))
        capture_message(client, "v2-yaml", "add.apply_async((1, 2), serializer='yaml')",
                        lambda: add.apply_async((1, 2), serializer="yaml", task_id=tid(15)))

        bindings = {k: sorted(client.smembers(k)) for k in client.keys("_kombu.binding.*")}
        write("layout.json", {
            "provenance": PROVENANCE,
            "note": "binding-set members after the captures above; members are routing_key SEP pattern SEP queue",
            "sep": SEP,
            "bindings": bindings,
        })

        # Protocol 1 producer.
        app1 = make_app(port, protocol=1, name="fixtures_v1")
        add1 = app1.tasks["tasks.add"]
        echo1 = app1.tasks["tasks.echo"]
        capture_message(client, "v1-basic", "protocol 1: add.apply_async((2, 3))",
                        lambda: add1.apply_async((2, 3), task_id=tid(201)))
        capture_message(client, "v1-kwargs", "protocol 1: echo.apply_async(('x',), {'k': 'v', 'n': [1, {'z': None}]})",
                        lambda: echo1.apply_async(("x",), {"k": "v", "n": [1, {"z": None}]}, task_id=tid(202)))
        capture_message(client, "v1-eta-expires", "protocol 1: add.apply_async((1, 1), countdown=30, expires=90)",
                        lambda: add1.apply_async((1, 1), countdown=30, expires=90, task_id=tid(203)))
        capture_message(client, "v1-priority-6", "protocol 1: add.apply_async((6, 6), priority=6)",
                        lambda: add1.apply_async((6, 6), priority=6, task_id=tid(204)))

        # Results, written by the real Redis result backend.
        be = app.backend
        capture_result(client, be, "success-int", "backend.mark_as_done(id, 5)",
                       lambda: be.mark_as_done(tid(301), 5), tid(301))
        capture_result(client, be, "success-nested", "backend.mark_as_done(id, {...unicode, nested...})",
                       lambda: be.mark_as_done(tid(302), {"név": "Zoë ✓", "items": [1, 2.5, None, [True]]}),
                       tid(302))
        capture_result(client, be, "success-none", "backend.mark_as_done(id, None)",
                       lambda: be.mark_as_done(tid(303), None), tid(303))
        tb = "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\nValueError: boom 42\n"
        capture_result(client, be, "failure-valueerror", "backend.mark_as_failure(id, ValueError('boom 42'), tb)",
                       lambda: be.mark_as_failure(tid(304), ValueError("boom 42"), traceback=tb), tid(304))
        capture_result(client, be, "failure-typeerror", "backend.mark_as_failure(id, TypeError('bad type'))",
                       lambda: be.mark_as_failure(tid(305), TypeError("bad type")), tid(305))
        capture_result(client, be, "failure-keyerror", "backend.mark_as_failure(id, KeyError('missing'))",
                       lambda: be.mark_as_failure(tid(306), KeyError("missing")), tid(306))
        capture_result(client, be, "failure-multiargs", "backend.mark_as_failure(id, OSError(2, 'No such file'))",
                       lambda: be.mark_as_failure(tid(307), OSError(2, "No such file")), tid(307))
        capture_result(client, be, "failure-noargs", "backend.mark_as_failure(id, RuntimeError())",
                       lambda: be.mark_as_failure(tid(308), RuntimeError()), tid(308))
        capture_result(client, be, "failure-custom", "backend.mark_as_failure(id, ShippingError('late', 3))",
                       lambda: be.mark_as_failure(tid(309), ShippingError("late", 3)), tid(309))
        capture_result(client, be, "failure-nested-class", "backend.mark_as_failure(id, Outer.InnerError('deep'))",
                       lambda: be.mark_as_failure(tid(310), Outer.InnerError("deep")), tid(310))
        capture_result(client, be, "failure-unserializable-arg",
                       "backend.mark_as_failure(id, ValueError('ok', {1, 2}))  (the set arg becomes its repr)",
                       lambda: be.mark_as_failure(tid(311), ValueError("ok", {1, 2})), tid(311))
        capture_result(client, be, "failure-notregistered", "backend.mark_as_failure(id, NotRegistered('tasks.nope'))",
                       lambda: be.mark_as_failure(tid(312), NotRegistered("tasks.nope")), tid(312))
        capture_result(client, be, "failure-with-parent-group",
                       "backend.mark_as_failure(id, ValueError('x'), request=Ctx(group=G, parent_id=P))",
                       lambda: be.mark_as_failure(tid(313), ValueError("x"),
                                                  request=Ctx(group=tid(900), parent_id=tid(901))), tid(313))
        capture_result(client, be, "revoked", "backend.mark_as_revoked(id, 'revoked')",
                       lambda: be.mark_as_revoked(tid(314), "revoked"), tid(314))
        capture_result(client, be, "revoked-expired", "backend.mark_as_revoked(id, 'expired')",
                       lambda: be.mark_as_revoked(tid(315), "expired"), tid(315))
        capture_result(client, be, "started", "backend.store_result(id, {'pid': 4242, 'hostname': 'w1@host'}, STARTED)",
                       lambda: be.store_result(tid(316), {"pid": 4242, "hostname": "w1@host"}, "STARTED"), tid(316))
        capture_result(client, be, "retry", "backend.mark_as_retry(id, ValueError('try again'), traceback=tb)",
                       lambda: be.mark_as_retry(tid(317), ValueError("try again"), traceback=tb), tid(317))
        capture_result(client, be, "success-with-parent",
                       "backend.mark_as_done(id, 7, request=Ctx(parent_id=id))",
                       lambda: be.mark_as_done(tid(318), 7, request=Ctx(parent_id=tid(318))), tid(318))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"fixtures written to {OUT}")


if __name__ == "__main__":
    main()
