"""Reads a topic back and checks it against the acknowledgements that
acked_producer.py printed (lines `ack PARTITION OFFSET I` in --acks FILE).
What it asserts, per partition:

1. every acknowledged message I is at its acknowledged offset with exactly
   the bytes acked_producer.py sent (key and value);
2. the log start is 0 and offsets are contiguous from 0 to the high
   watermark (no gaps), and the high watermark is past every ack;
3. no message number appears twice (no duplicate of any message, acked or
   not: the idempotent producer's retries must be deduplicated);
4. with --ordered, message numbers increase with the offset (idempotence
   keeps order per partition), within each stream of a million numbers
   (concurrent producers are given --first values a million apart);
5. every message in the log is one the producer sent (value matches its
   number), so messages that landed without an ack are real ones.

Prints `ok: ...` with counts of acked and unacknowledged-but-landed
messages."""
import argparse
import sys
import time

from confluent_kafka import Consumer, TopicPartition

from acked_producer_values import value_for
from common import BOOTSTRAP, check, fail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--acks", required=True)
    ap.add_argument("--tag", default="m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size-max", type=int, default=200)
    ap.add_argument("--ordered", action="store_true")
    ap.add_argument("--timeout-s", type=float, default=60)
    a = ap.parse_args()

    acks = {}
    with open(a.acks) as f:
        for line in f:
            w = line.split()
            if len(w) == 4 and w[0] == "ack":
                p, off, i = int(w[1]), int(w[2]), int(w[3])
                check(acks.get((p, off), i) == i, f"two messages acked at p{p} offset {off}")
                acks[(p, off)] = i
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "verify", "enable.auto.commit": False,
                  "fetch.message.max.bytes": 4 * 1024 * 1024, "enable.partition.eof": True})
    landed_unacked = 0
    total = 0
    for p in range(a.partitions):
        tp = TopicPartition(a.topic, p)
        low, high = c.get_watermark_offsets(tp, timeout=10)
        check(low == 0, f"p{p}: log start {low}, expected 0")
        want = max([off for (q, off) in acks if q == p], default=-1)
        check(high > want, f"p{p}: high watermark {high} but offset {want} was acknowledged")
        c.assign([TopicPartition(a.topic, p, 0)])
        seen = {}
        next_off = 0
        last_i = {}
        end = time.monotonic() + a.timeout_s
        while next_off < high:
            if time.monotonic() > end:
                fail(f"p{p}: read {next_off} of {high} in {a.timeout_s}s")
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    continue
                fail(f"p{p}: consume error {m.error()}")
            off = m.offset()
            check(off == next_off, f"p{p}: offset {off} where {next_off} was expected (gap)")
            i = int(m.key())
            check(i % a.partitions == p, f"p{p} offset {off}: message {i} belongs elsewhere")
            check(i not in seen, f"p{p}: message {i} at offsets {seen.get(i)} and {off} (duplicate)")
            seen[i] = off
            check(m.value() == value_for(a.tag, p, i, a.seed, a.size_max),
                  f"p{p} offset {off}: message {i} has different bytes")
            stream = i // 1_000_000
            if a.ordered:
                prev = last_i.get(stream, -1)
                check(i > prev, f"p{p} offset {off}: message {i} after {prev} (out of order)")
            last_i[stream] = i
            if (p, off) in acks:
                check(acks[(p, off)] == i, f"p{p} offset {off}: holds {i}, message {acks[(p, off)]} was acked there")
            else:
                landed_unacked += 1
            next_off = off + 1
            total += 1
        for (q, off), i in acks.items():
            if q == p:
                check(seen.get(i) == off, f"p{p}: acked message {i} at {off} not found there")
    c.close()
    print(f"ok: {total} messages, {len(acks)} acked, {landed_unacked} landed without an ack", flush=True)


main()
