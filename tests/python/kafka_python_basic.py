"""kafka-python: admin create and delete topic, produce, consume; content,
order, no loss, no duplicates."""
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from common import BOOTSTRAP, check, deadline, payload

PARTITIONS = 2
N = 300
TOPIC = f"kp-{uuid.uuid4().hex[:8]}"

admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30000)
admin.create_topics([NewTopic(name=TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
check(TOPIC in admin.list_topics(), f"{TOPIC} not listed after create")

producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
futures = []
for i in range(N):
    p = i % PARTITIONS
    futures.append((p, i, producer.send(TOPIC, value=payload("kp", p, i), key=str(i).encode(), partition=p)))
producer.flush(timeout=30)
offsets = {p: [] for p in range(PARTITIONS)}
for p, i, f in futures:
    md = f.get(timeout=30)
    check(md.partition == p, f"message {i} landed on {md.partition}, sent to {p}")
    offsets[p].append(md.offset)
for p in range(PARTITIONS):
    check(offsets[p] == list(range(len(offsets[p]))), f"partition {p} offsets {offsets[p][:10]}")
producer.close()

consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                         consumer_timeout_ms=int(1000 * 10))
tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
consumer.assign(tps)
consumer.seek_to_beginning(*tps)
seen = {p: [] for p in range(PARTITIONS)}
end = deadline()
while sum(len(v) for v in seen.values()) < N and time.monotonic() < end:
    for tp, msgs in consumer.poll(timeout_ms=1000).items():
        for m in msgs:
            seen[tp.partition].append((m.offset, m.key, m.value))
consumer.close()
for p in range(PARTITIONS):
    want = [(k, str(i).encode(), payload("kp", p, i)) for k, i in enumerate(range(p, N, PARTITIONS))]
    check(seen[p] == want, f"partition {p}: consumed {len(seen[p])} records, differing from what was sent")

admin.delete_topics([TOPIC])
end = deadline()
while TOPIC in admin.list_topics() and time.monotonic() < end:
    time.sleep(0.2)
check(TOPIC not in admin.list_topics(), f"{TOPIC} still listed after delete")
admin.close()
print(f"ok: {N} messages over {PARTITIONS} partitions; topic created and deleted")
