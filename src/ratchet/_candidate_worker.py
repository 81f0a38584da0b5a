"""The process a candidate's functions run in, started by ``ratchet.evaluation``.

Run as ``python -I _candidate_worker.py DIR MODULE REPLY_FD``, never imported:
it imports the candidate module from ``DIR`` (a private copy, on this
process's ``sys.path`` only), answers the ready line, then serves one JSON
request per stdin line with one JSON reply line on ``REPLY_FD``. Standard
library only, and nothing of Ratchet's: this process runs candidate code,
and the evaluator trusts none of what it says beyond the JSON it returns.
"""

import importlib.util
import json
import os
import sys
import traceback


def _send(fd: int, reply: dict) -> None:
    try:
        data = json.dumps(reply, allow_nan=True)
    except (TypeError, ValueError) as exc:
        data = json.dumps(
            {"id": reply.get("id"), "error": {"type": "TypeError", "message": f"result: {exc}"}}
        )
    data_bytes = (data + "\n").encode()
    while data_bytes:
        data_bytes = data_bytes[os.write(fd, data_bytes) :]


def _error(exc: BaseException) -> dict:
    lines = traceback.format_exception_only(type(exc), exc)
    return {"type": type(exc).__name__, "message": str(exc), "detail": "".join(lines)[-2000:]}


def _load(directory: str, name: str) -> object:
    """Exactly the copied file (or package), even when its name is a standard module's."""
    path = os.path.join(directory, name)
    if os.path.isdir(path):
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(path, "__init__.py"), submodule_search_locations=[path]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path + ".py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    directory, module_name, reply = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.set_inheritable(reply, False)  # nothing the candidate starts gets the reply pipe
    sys.argv = [module_name]
    sys.path.insert(0, directory)
    try:
        module = _load(directory, module_name)
    except BaseException as exc:  # SystemExit too: a module that exits on import failed to load
        _send(reply, {"id": None, "error": _error(exc)})
        return
    _send(reply, {"id": None, "ready": True})
    stdin = sys.stdin.buffer
    for line in iter(stdin.readline, b""):
        request = json.loads(line)
        call_id = request.get("id")
        try:
            function = getattr(module, request["name"])
            result = function(*request.get("args", []), **request.get("kwargs", {}))
        except BaseException as exc:
            _send(reply, {"id": call_id, "error": _error(exc)})
            if isinstance(exc, KeyboardInterrupt):
                return
            continue
        _send(reply, {"id": call_id, "result": result})


if __name__ == "__main__":
    main()
