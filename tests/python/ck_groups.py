"""confluent-kafka consumer groups: two consumers split a 4-partition topic;
when one closes, or its process dies and its session times out, the other
owns all four. Usage: ck_groups.py split|resume|cooperative"""
import os
import signal
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import BOOTSTRAP, check, deadline, fail, payload

PARTITIONS = 4
PER_PARTITION = 100


def make_topic():
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5})
    for i in range(PER_PARTITION):
        for p in range(PARTITIONS):
            producer.produce(topic, partition=p, value=payload("g", p, i))
    check(producer.flush(30) == 0, "produce did not finish")
    return topic


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


def assigned(c):
    return sorted(tp.partition for tp in c.assignment())


def poll_until(consumers, cond, what):
    end = deadline()
    while time.monotonic() < end:
        for c in consumers:
            msg = c.poll(0.1)
            if msg is not None and msg.error():
                fail(f"{what}: consumer error {msg.error()}")
        if cond():
            return
    fail(f"timed out waiting for {what}: assignments {[assigned(c) for c in consumers]}")


def split_then_takeover():
    topic = make_topic()
    group = f"g-{topic}"
    a, b = consumer(group), consumer(group)
    a.subscribe([topic])
    b.subscribe([topic])

    def split():
        pa, pb = assigned(a), assigned(b)
        return len(pa) == 2 and len(pb) == 2 and sorted(pa + pb) == list(range(PARTITIONS))

    poll_until([a, b], split, "two consumers splitting 4 partitions")
    print(f"split: a={assigned(a)} b={assigned(b)}")
    b.close()
    poll_until([a], lambda: assigned(a) == list(range(PARTITIONS)), "a owning all after b closed")
    print("after close: a owns all 4")

    # A consumer in another process that is killed: its session must time out.
    child = subprocess.Popen([sys.executable, __file__, "member", topic, group],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        check(line.startswith("member-up"), f"child did not start: {line!r}")
        poll_until([a], lambda: len(assigned(a)) == 2, "a giving half to the new member")
        t_kill = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        poll_until([a], lambda: assigned(a) == list(range(PARTITIONS)), "a owning all after the session timeout")
        print(f"after kill: a owns all 4 again after {time.monotonic() - t_kill:.1f} s")
    finally:
        if child.poll() is None:
            child.kill()
    a.close()


def member(topic, group):
    c = consumer(group)
    c.subscribe([topic])
    print("member-up", flush=True)
    end = deadline()
    while time.monotonic() < end:
        c.poll(0.1)


def resume_after_commit():
    topic = make_topic()
    group = f"g-{topic}"
    total = PARTITIONS * PER_PARTITION
    first = 250
    seen = {}
    c = consumer(group)
    c.subscribe([topic])
    end = deadline()
    while len(seen) < first and time.monotonic() < end:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume error {msg.error()}")
        key = (msg.partition(), msg.offset())
        check(key not in seen, f"{key} delivered twice")
        check(msg.value() == payload("g", msg.partition(), msg.offset()), f"{key}: wrong value")
        seen[key] = msg.value()
        c.commit(message=msg, asynchronous=False)
    check(len(seen) == first, f"consumed {len(seen)} of the first {first}")
    committed = {tp.partition: tp.offset for tp in c.committed(
        [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
    for p in range(PARTITIONS):
        done = max([o for (pp, o) in seen if pp == p], default=-1) + 1
        want = done if done > 0 else -1001
        check(committed[p] == want, f"partition {p}: committed {committed[p]}, consumed up to {done}")
    c.close()

    c = consumer(group)
    c.subscribe([topic])
    end = deadline()
    while len(seen) < total and time.monotonic() < end:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume error {msg.error()}")
        key = (msg.partition(), msg.offset())
        check(key not in seen, f"{key} delivered again after resume (committed work repeated)")
        seen[key] = msg.value()
    c.close()
    check(len(seen) == total, f"consumed {len(seen)} of {total} after resume")
    print(f"resume: {first} before, {total - first} after, none lost or repeated")


def cooperative():
    topic = make_topic()
    group = f"g-{topic}"
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    a, b = consumer(group, **extra), consumer(group, **extra)
    seen = {}

    def drain(c):
        msg = c.poll(0.1)
        if msg is None:
            return
        if msg.error():
            fail(f"consume error {msg.error()}")
        key = (msg.partition(), msg.offset())
        check(key not in seen, f"{key} delivered twice")
        seen[key] = msg.value()
        c.commit(message=msg, asynchronous=False)

    a.subscribe([topic])
    end = deadline()
    while len(assigned(a)) < PARTITIONS and time.monotonic() < end:
        drain(a)
    check(assigned(a) == list(range(PARTITIONS)), f"a alone got {assigned(a)}")
    b.subscribe([topic])
    end = deadline()
    while time.monotonic() < end:
        drain(a)
        drain(b)
        pa, pb = assigned(a), assigned(b)
        if len(pa) == 2 and len(pb) == 2 and len(seen) == PARTITIONS * PER_PARTITION:
            break
    pa, pb = assigned(a), assigned(b)
    check(sorted(pa + pb) == list(range(PARTITIONS)) and len(pa) == 2, f"cooperative split a={pa} b={pb}")
    check(len(seen) == PARTITIONS * PER_PARTITION, f"consumed {len(seen)}")
    a.close()
    b.close()
    print(f"cooperative: a={pa} b={pb}, {len(seen)} messages exactly once")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "split":
        split_then_takeover()
    elif mode == "member":
        member(sys.argv[2], sys.argv[3])
    elif mode == "resume":
        resume_after_commit()
    elif mode == "cooperative":
        cooperative()
    else:
        fail(f"unknown mode {mode}")
    if mode != "member":
        print("ok")
