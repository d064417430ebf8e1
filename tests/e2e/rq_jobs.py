"""Jobs for test_rq.py's RQ worker: each records that it ran, through the proxy."""
import os

import redis


def record(n):
    """Increments done:<n> through the proxy (RINGPROXY_PORT) and returns n: a job run twice
    shows as 2."""
    client = redis.Redis(host="127.0.0.1", port=int(os.environ["RINGPROXY_PORT"]))
    client.incr(f"done:{n}")
    return n


def fail_once(n):
    """Fails the first time it runs (RQ retries it), then records like record()."""
    client = redis.Redis(host="127.0.0.1", port=int(os.environ["RINGPROXY_PORT"]))
    if client.incr(f"tries:{n}") == 1:
        raise RuntimeError(f"job {n}: first try fails on purpose")
    return record(n)
