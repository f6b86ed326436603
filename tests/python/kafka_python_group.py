"""kafka-python group consumer: reads everything exactly once, commits, and
a restarted member of the group resumes at the end (nothing re-read)."""
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from common import BOOTSTRAP, check, deadline, payload

PARTITIONS = 3
N = 300
TOPIC = f"kpg-{uuid.uuid4().hex[:8]}"
GROUP = f"g-{TOPIC}"

admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
admin.create_topics([NewTopic(name=TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
admin.close()
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
for i in range(N):
    producer.send(TOPIC, value=payload("kpg", i % PARTITIONS, i), partition=i % PARTITIONS)
producer.flush(timeout=30)
producer.close()


def group_consumer():
    return KafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id=GROUP,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         session_timeout_ms=10000, heartbeat_interval_ms=500)


c = group_consumer()
seen = set()
end = deadline()
while len(seen) < N and time.monotonic() < end:
    for tp, msgs in c.poll(timeout_ms=500).items():
        for m in msgs:
            key = (tp.partition, m.offset)
            check(key not in seen, f"{key} read twice")
            seen.add(key)
            check(m.value.startswith(f"kpg-p{tp.partition}-".encode()), f"{key}: wrong value {m.value!r}")
    c.commit()
check(len(seen) == N, f"read {len(seen)} of {N}")
c.close()

# Restarted: it must resume at the commits. New records (one per
# partition) prove it is consuming; anything older is a re-read.
c = group_consumer()
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
for p in range(PARTITIONS):
    producer.send(TOPIC, value=payload("kpg-new", p, N + p), partition=p)
producer.flush(timeout=30)
producer.close()
after = []
end = deadline()
while len(after) < PARTITIONS and time.monotonic() < end:
    for tp, msgs in c.poll(timeout_ms=500).items():
        after.extend((tp.partition, m.offset, m.value) for m in msgs)
c.close()
old = [a for a in after if not a[2].startswith(b"kpg-new")]
check(not old, f"{len(old)} messages re-read after a committed restart: {old[:3]}")
check(len(after) == PARTITIONS, f"read {len(after)} of the {PARTITIONS} new records after the restart")
print(f"ok: {N} read exactly once by the group; after a restart only the {PARTITIONS} new ones")
