"""Shared helpers for the client scripts: bootstrap address, bounded waits,
and failures that say what was expected."""
import os
import sys
import time

BOOTSTRAP = os.environ.get("BOOTSTRAP", "127.0.0.1:9092")
# Every wait in these scripts is bounded by this many seconds.
DEADLINE_S = float(os.environ.get("CLIENT_DEADLINE_S", "60"))


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def deadline():
    return time.monotonic() + DEADLINE_S


def payload(tag, partition, i, size=0):
    """A value that names its origin, padded to `size` bytes when asked."""
    base = f"{tag}-p{partition}-m{i:06d}".encode()
    if size > len(base):
        base += b"." * (size - len(base))
    return base
