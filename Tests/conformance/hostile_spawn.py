"""The launcher of the hostile battery (test_hostile.py), run as a small separate process.

Linux counts a child's peak memory (ru_maxrss) from the memory of the process that forked it:
a child of the test session, which holds models and onnxruntime, would start with hundreds of
MiB to its name. This process stays small (nothing but the standard library), runs each
command the parent asks for, and answers with that command's own exit status and peak memory
from wait4.

Request (pickled, length-prefixed, on stdin): dict(argv, cwd, env, timeout, kill_after,
kill_signal, stdout, stderr) where stdout and stderr are paths to write the command's output to.
Answer: dict(status=wait status, maxrss_kb, seconds, timed_out, pid).
"""

import os
import pickle
import signal
import struct
import sys
import threading
import time


def run(req: dict) -> dict:
    with open(req["stdout"], "wb") as out, open(req["stderr"], "wb") as err, open(os.devnull, "rb") as null:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: its own session, so that a timeout kills everything it started
            try:
                os.setsid()
                os.chdir(req["cwd"])
                os.dup2(null.fileno(), 0)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                os.execve(req["argv"][0], req["argv"], req["env"])
            finally:
                os._exit(127)
        timed_out = threading.Event()
        lock = threading.Lock()
        reaped = [False]

        def send(sig, group):
            with lock:
                if reaped[0]:
                    return
                try:
                    os.killpg(pid, sig) if group else os.kill(pid, sig)
                except OSError:
                    pass

        def on_timeout():
            timed_out.set()
            send(signal.SIGKILL, True)

        timers = [threading.Timer(req["timeout"], on_timeout)]
        if req.get("kill_after") is not None:
            timers.append(threading.Timer(req["kill_after"], send, (req["kill_signal"], False)))
        for t in timers:
            t.daemon = True
            t.start()
        while True:
            try:
                _, status, usage = os.wait4(pid, 0)
                break
            except InterruptedError:
                continue
        seconds = time.monotonic() - start
        with lock:
            reaped[0] = True
        for t in timers:
            t.cancel()
        # whatever the command left running in its session goes too
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    return {"status": status, "maxrss_kb": usage.ru_maxrss, "seconds": seconds, "timed_out": timed_out.is_set(),
            "pid": pid}


def main() -> None:
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    while True:
        header = stdin.read(8)
        if len(header) < 8:
            return
        (size,) = struct.unpack("<Q", header)
        req = pickle.loads(stdin.read(size))
        try:
            answer = run(req)
        except Exception as e:  # noqa: BLE001
            answer = {"error": f"{type(e).__name__}: {e}"}
        data = pickle.dumps(answer)
        out.write(struct.pack("<Q", len(data)) + data)
        out.flush()


if __name__ == "__main__":
    main()
