#!/usr/bin/python3
"""Drive a real Celery client for the interop tests.

stdin: {"send": [{"name", "args", "kwargs", "via": "delay" | "apply_async" | "send_task", "countdown"?,
                  "expires"?}], "get": [task id...], "timeout": seconds, "revoke": [task id...]}
stdout: {"sent": [task id...], "results": [{"id", "ok", "value" | ("type", "module", "args"), "elapsed"}]}
The "send" calls are made first, then every id in "get" plus every sent id (unless "no_wait") is waited
for with AsyncResult.get(), all against $CELERY_BROKER_URL.
"""
import json
import sys
import time

from celery.result import AsyncResult

from celery_app import app


def send(spec):
    name = spec["name"]
    args = spec.get("args", [])
    kwargs = spec.get("kwargs", {})
    via = spec.get("via", "delay")
    options = {k: spec[k] for k in ("countdown", "expires", "priority", "queue") if k in spec}
    if via == "send_task":
        return app.send_task(name, args=args, kwargs=kwargs, **options)
    task = app.tasks[name]
    if via == "delay" and not options:
        return task.delay(*args, **kwargs)
    return task.apply_async(args=args, kwargs=kwargs, **options)


def main():
    data = json.load(sys.stdin)
    timeout = data.get("timeout", 10)
    started = time.monotonic()
    sent = [send(spec) for spec in data.get("send", [])]
    for task_id in data.get("revoke", []):
        app.control.revoke(task_id)
    out = {"sent": [r.id for r in sent], "results": []}
    waits = [AsyncResult(i, app=app) for i in data.get("get", [])]
    if not data.get("no_wait"):
        waits = sent + waits
    for r in waits:
        entry = {"id": r.id}
        try:
            entry["value"] = r.get(timeout=timeout)
            entry["ok"] = True
        except Exception as exc:  # the point is to report what Celery raised
            entry.update(ok=False, type=type(exc).__name__, module=type(exc).__module__, args=[repr(a) if not isinstance(a, (str, int, float)) else a for a in exc.args])
        entry["state"] = r.state
        entry["elapsed"] = round(time.monotonic() - started, 3)
        out["results"].append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
