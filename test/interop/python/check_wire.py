#!/usr/bin/python3
"""Run qworker-produced wire data through Celery's own decoding code, without a broker or worker.

stdin:  {"messages": [<envelope JSON text>...], "results": [<result meta JSON text>...]}
stdout: {"messages": [...], "results": [...]}, one report per input, in order.

Messages go through kombu's virtual-transport Message (body decoding, accept=['json']) and
celery.worker.request.Request (the object a Celery worker builds before running a task), so ids, eta,
expires, time limits, args and kwargs are read exactly as a worker would. Results go through the Redis
backend's decode_result (what AsyncResult.get() uses), so exceptions come back as the class Python would
raise.
"""
import json
import sys

from celery import Celery
from celery.utils.iso8601 import parse_iso8601
from celery.worker.request import Request
from kombu import Connection


def main():
    data = json.load(sys.stdin)
    # Nothing connects: the backend object is only used to decode, the memory transport never leaves RAM.
    app = Celery("check", broker="memory://", backend="redis://127.0.0.1:1/0")
    app.conf.update(accept_content=["json"], timezone="UTC", enable_utc=True)

    @app.task(name="tasks.echo")
    def echo(*args, **kwargs):
        return [args, kwargs]

    out = {"messages": [], "results": []}
    with Connection("memory://") as conn:
        channel = conn.default_channel
        for raw in data.get("messages", []):
            try:
                payload = json.loads(raw)
                message = channel.Message(payload, channel=channel)
                args, kwargs, embed = message.decode()
                task_name = message.headers["task"]
                req = Request(message, app=app, task=app.tasks.get(task_name, echo))
                out["messages"].append({
                    "ok": True,
                    "id": req.id,
                    "task": req.name,
                    "args": list(req.args),
                    "kwargs": req.kwargs,
                    "embed": embed,
                    "eta": req.eta.isoformat() if req.eta else None,
                    "expires": req.expires.isoformat() if req.expires else None,
                    "retries": req.request_dict.get("retries"),
                    "time_limits": list(req.time_limits),
                    "root_id": req.root_id,
                    "parent_id": req.parent_id,
                    "group": req.group,
                    "delivery_info": {k: message.delivery_info.get(k) for k in ("exchange", "routing_key", "priority")},
                    "delivery_tag": message.delivery_tag,
                    "correlation_id": req.correlation_id,
                    "ignore_result": req.ignore_result,
                })
            except Exception as exc:  # report, do not stop: the test shows which one failed
                out["messages"].append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        for raw in data.get("results", []):
            try:
                meta = app.backend.decode_result(raw)
                res = meta["result"]
                if isinstance(res, BaseException):
                    view = {"kind": "exception", "class": f"{type(res).__module__}.{type(res).__qualname__}",
                            "bases": [f"{b.__module__}.{b.__qualname__}" for b in type(res).__mro__],
                            "args": list(res.args), "str": str(res)}
                else:
                    view = {"kind": "value", "value": res}
                out["results"].append({"ok": True, "status": meta["status"], "task_id": meta["task_id"],
                                       "date_done": meta["date_done"],
                                       "date_done_parsed": (parse_iso8601(meta["date_done"]).isoformat()
                                                            if meta["date_done"] else None), "traceback": meta["traceback"],
                                       "view": view})
            except Exception as exc:
                out["results"].append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    json.dump(out, sys.stdout, default=repr)


if __name__ == "__main__":
    main()
