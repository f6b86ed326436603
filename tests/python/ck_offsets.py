"""confluent-kafka committed offsets across broker restarts and expiry.
Usage: ck_offsets.py commit|check|expired TOPIC GROUP

commit:  create TOPIC (3 partitions, 10 records each); a group member
         consumes everything and commits chosen offsets; a standalone
         consumer (assign, no membership) commits under GROUP-solo.
check:   both groups' committed offsets are what commit left, and a new
         member of GROUP starts reading exactly at them.
expired: neither group has committed offsets any more."""
import sys
import time

from confluent_kafka import OFFSET_INVALID, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import BOOTSTRAP, check, deadline, fail, payload

PARTITIONS = 3
PER_PARTITION = 10
COMMITTED = {0: 7, 1: 4, 2: 10}
SOLO = {0: 2, 1: 0, 2: 9}


def consumer(group, **extra):
    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 300,
    }
    conf.update(extra)
    return Consumer(conf)


def committed(c, topic):
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in c.committed(tps, timeout=20)}


def commit(topic, group):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(timeout=30)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})
    for i in range(PER_PARTITION):
        for part in range(PARTITIONS):
            p.produce(topic, partition=part, value=payload("o", part, i))
    check(p.flush(30) == 0, "produce did not finish")

    c = consumer(group)
    c.subscribe([topic])
    got = 0
    end = deadline()
    while got < PARTITIONS * PER_PARTITION and time.monotonic() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got += 1
    check(got == PARTITIONS * PER_PARTITION, f"consumed {got}")
    c.commit(offsets=[TopicPartition(topic, p, o) for p, o in COMMITTED.items()], asynchronous=False)
    check(committed(c, topic) == COMMITTED, f"committed before restart: {committed(c, topic)}")
    c.close()

    solo = consumer(f"{group}-solo")
    solo.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    solo.commit(offsets=[TopicPartition(topic, p, o) for p, o in SOLO.items()], asynchronous=False)
    check(committed(solo, topic) == SOLO, f"solo committed: {committed(solo, topic)}")
    solo.close()


def check_kept(topic, group):
    solo = consumer(f"{group}-solo")
    check(committed(solo, topic) == SOLO, f"solo after restart: {committed(solo, topic)}")
    solo.close()
    c = consumer(group)
    check(committed(c, topic) == COMMITTED, f"after restart: {committed(c, topic)}")
    c.subscribe([topic])
    first = {}
    want = {p: o for p, o in COMMITTED.items() if o < PER_PARTITION}
    end = deadline()
    while len(first) < len(want) and time.monotonic() < end:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        first.setdefault(m.partition(), m.offset())
    c.close()
    check(first == want, f"a new member started at {first}, committed {want}")


def check_expired(topic, group):
    for g in (group, f"{group}-solo"):
        c = consumer(g)
        got = committed(c, topic)
        c.close()
        check(all(o == OFFSET_INVALID for o in got.values()), f"{g}: offsets left after expiry: {got}")


if __name__ == "__main__":
    mode, topic, group = sys.argv[1:4]
    {"commit": commit, "check": check_kept, "expired": check_expired}.get(
        mode, lambda *_: fail(f"unknown mode {mode}"))(topic, group)
    print("ok")
