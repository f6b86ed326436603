"""confluent-kafka producer for the crash and fault tests: sends numbered
messages round-robin over a topic's partitions and prints one line per
delivery report, flushed at once, so that the test driving it knows every
acknowledgement the client received even if this process is killed:

    ack PARTITION OFFSET I      the broker acknowledged message I there
    err PARTITION I CODE NAME   delivery of message I failed (final)
    done acked=N failed=M       after the final flush

Message I goes to partition I % PARTITIONS; its value is
acked_producer_values.value_for(TAG, partition, I, SEED, SIZE_MAX). With
--idempotent the producer is acks=all, enable.idempotence=true and retries
across broker restarts (message.timeout.ms generous); without it, acks=all
with retries=0, so each broker error reaches the delivery report.
Producing stops after --count messages, after --duration-s, when the file
--stop-file appears, or (with --until-error) at the first failed delivery;
then it flushes, bounded by --flush-s."""
import argparse
import os
import sys
import time

from confluent_kafka import Producer

from acked_producer_values import value_for
from common import BOOTSTRAP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0, help="number of the first message")
    ap.add_argument("--tag", default="m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size-max", type=int, default=200)
    ap.add_argument("--idempotent", action="store_true")
    ap.add_argument("--until-error", action="store_true")
    ap.add_argument("--rate", type=float, default=0, help="messages/s, 0 = unbounded")
    ap.add_argument("--duration-s", type=float, default=60)
    ap.add_argument("--flush-s", type=float, default=60)
    ap.add_argument("--stop-file")
    ap.add_argument("--batch-bytes", type=int, default=1000000,
                    help="librdkafka batch.size: keep it below the topic's segment.bytes")
    a = ap.parse_args()

    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "acks": "all",
        "linger.ms": 2,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 200,
        "socket.connection.setup.timeout.ms": 2000,
        "message.max.bytes": 4 * 1024 * 1024,
        "batch.size": a.batch_bytes,
    }
    if a.idempotent:
        conf.update({"enable.idempotence": True, "message.timeout.ms": 110000,
                     "request.timeout.ms": 5000})
    else:
        conf.update({"enable.idempotence": False, "retries": 0,
                     "message.timeout.ms": 20000, "request.timeout.ms": 5000})
    failed = []
    acked = [0]

    def report(err, msg):
        i = int(msg.key())
        if err is not None:
            failed.append(i)
            print(f"err {msg.partition()} {i} {err.code()} {err.name()}", flush=True)
        else:
            acked[0] += 1
            print(f"ack {msg.partition()} {msg.offset()} {i}", flush=True)

    def on_error(err):
        # Broker down is expected here; a fatal error (idempotence broken)
        # is a test failure.
        if err.fatal():
            print(f"fatal {err.code()} {err.name()} {err.str()}", flush=True)
            sys.exit(3)

    conf["error_cb"] = on_error
    p = Producer(conf)
    start = time.monotonic()
    end = start + a.duration_s
    for n in range(a.count):
        if time.monotonic() > end:
            break
        if a.stop_file and n % 50 == 0 and os.path.exists(a.stop_file):
            break
        if a.until_error and failed:
            break
        if a.rate > 0:
            ahead = n / a.rate - (time.monotonic() - start)
            if ahead > 0:
                p.poll(ahead)
        i = a.first + n
        part = i % a.partitions
        v = value_for(a.tag, part, i, a.seed, a.size_max)
        while True:
            try:
                p.produce(a.topic, partition=part, key=str(i).encode(), value=v, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if a.until_error and n % 16 == 15:
            p.flush(a.flush_s)
    left = p.flush(a.flush_s)
    print(f"done acked={acked[0]} failed={len(failed)} unflushed={left}", flush=True)


main()
