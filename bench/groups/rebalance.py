"""Rebalance timing: N confluent-kafka consumers join one group on a topic
of P partitions; the figure is the time from the last consumer's
subscribe() (an upper bound on its JoinGroup: librdkafka first finds the
coordinator) to the moment every partition is assigned exactly once.
Then one member leaves and the time until the others own everything
again is taken too (bound by the members' heartbeat interval: they learn
of the rebalance from a heartbeat).

    BOOTSTRAP=HOST:PORT [STAGGER_MS=100] python3 rebalance.py [ROUNDS] [CONSUMERS] [PARTITIONS]

Prints one JSON object per round, then a summary line."""
import json
import statistics
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = __import__("os").environ.get("BOOTSTRAP", "127.0.0.1:9092")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
P = int(sys.argv[3]) if len(sys.argv) > 3 else 100
HEARTBEAT_MS = 500
# Start the consumers this far apart (0: all at once).
STAGGER_MS = int(__import__("os").environ.get("STAGGER_MS", "0"))
DEADLINE_S = 60


class Member:
    def __init__(self, group, topic, i):
        self.c = Consumer({
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "client.id": f"m{i}",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": HEARTBEAT_MS,
        })
        self.topic = topic
        self.assigned = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.subscribed_at = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_assign(self, c, parts):
        with self.lock:
            self.assigned = {p.partition for p in parts}

    def on_revoke(self, c, parts):
        with self.lock:
            self.assigned = set()

    def run(self):
        self.subscribed_at = time.monotonic()
        self.c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stop.is_set():
            self.c.poll(0.05)
        self.c.close()

    def snapshot(self):
        with self.lock:
            return set(self.assigned)


def all_assigned(members):
    seen = []
    for m in members:
        seen.extend(m.snapshot())
    return len(seen) == P and set(seen) == set(range(P))


def wait_all(members, what):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if all_assigned(members):
            return time.monotonic()
        time.sleep(0.005)
    raise SystemExit(f"timed out: {what}")


def one_round(admin):
    topic = f"rb-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=P, replication_factor=1)])[topic].result(timeout=60)
    members = [Member(f"g-{topic}", topic, i) for i in range(N)]
    for m in members:
        m.thread.start()
        time.sleep(STAGGER_MS / 1000)
    t_all = wait_all(members, "initial assignment")
    last_join = max(m.subscribed_at for m in members)
    first_join = min(m.subscribed_at for m in members)
    leaver = members.pop()
    t_leave = time.monotonic()
    leaver.stop.set()
    leaver.thread.join(timeout=DEADLINE_S)
    # The leaver's close() sends LeaveGroup; wait for the rest to own all.
    time.sleep(0.01)
    t_again = wait_all(members, "reassignment after a leave")
    for m in members:
        m.stop.set()
    for m in members:
        m.thread.join(timeout=DEADLINE_S)
    admin.delete_topics([topic])
    return {
        "join_spread_s": round(last_join - first_join, 3),
        "assigned_after_last_join_s": round(t_all - last_join, 3),
        "reassigned_after_leave_s": round(t_again - t_leave, 3),
    }


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    rounds = []
    for _ in range(ROUNDS):
        r = one_round(admin)
        print(json.dumps(r), flush=True)
        rounds.append(r)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    worst = {k: max(r[k] for r in rounds) for k in rounds[0]}
    print(json.dumps({"consumers": N, "partitions": P, "rounds": ROUNDS,
                      "heartbeat_interval_ms": HEARTBEAT_MS, "stagger_ms": STAGGER_MS, "median": med, "max": worst}))


main()
