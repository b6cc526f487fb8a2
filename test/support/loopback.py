"""What the scripts that drive a program on loopback share (test/http,
test/otel, test/prometheus): failing at once from any thread, checks, and a
free port."""
import os
import socket

_on_failure = []


def on_failure(action):
    """Runs `action` (say, killing a process the test started) before a
    failure ends the test."""
    _on_failure.append(action)


def fail(message):
    """Prints the failure and ends the process at once, from any thread (a
    client thread or a deadline timer may be the one that sees it)."""
    print(f"FAIL: {message}", flush=True)
    for action in _on_failure:
        try:
            action()
        except Exception:  # ending anyway
            pass
    os._exit(1)


def check(cond, message):
    if not cond:
        fail(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
