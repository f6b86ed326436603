"""confluent-kafka (librdkafka): admin create, idempotent acks=all produce
with keys and headers, consume by offset, watermarks, offsets_for_times, and
a 1 MiB message. Asserts on content, order per partition, no loss and no
duplicates."""
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import BOOTSTRAP, check, deadline, fail, payload

PARTITIONS = 3
PER_PARTITION = 200
TOPIC = f"ck-{uuid.uuid4().hex[:8]}"

admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
futures = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
futures[TOPIC].result(timeout=30)
md = admin.list_topics(timeout=30)
check(TOPIC in md.topics, f"{TOPIC} missing from metadata after create")
check(len(md.topics[TOPIC].partitions) == PARTITIONS, "wrong partition count in metadata")

producer = Producer({
    "bootstrap.servers": BOOTSTRAP,
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "message.max.bytes": 2 * 1024 * 1024,
})
acked = {}  # (partition, i) -> offset
errors = []


def on_delivery(err, msg):
    if err is not None:
        errors.append(err)
        return
    p, i = msg.partition(), int(msg.key().decode().split("-")[1])
    check((p, i) not in acked, f"delivery reported twice for {(p, i)}")
    acked[(p, i)] = msg.offset()


t_before = int(time.time() * 1000) - 1
for i in range(PER_PARTITION):
    for p in range(PARTITIONS):
        headers = [("h-index", str(i).encode()), ("h-part", str(p).encode())] if i % 2 == 0 else None
        producer.produce(TOPIC, partition=p, key=f"k-{i}".encode(),
                         value=payload("ck", p, i), headers=headers, on_delivery=on_delivery)
    producer.poll(0)
left = producer.flush(30)
check(left == 0, f"{left} messages not delivered after flush")
check(not errors, f"delivery errors: {errors[:3]}")
check(len(acked) == PARTITIONS * PER_PARTITION, f"acked {len(acked)} of {PARTITIONS * PER_PARTITION}")
for p in range(PARTITIONS):
    offs = [acked[(p, i)] for i in range(PER_PARTITION)]
    check(offs == list(range(PER_PARTITION)), f"partition {p}: offsets not 0..{PER_PARTITION - 1} in order: {offs[:10]}")

consumer = Consumer({
    "bootstrap.servers": BOOTSTRAP,
    "group.id": f"g-{TOPIC}",
    "enable.auto.commit": False,
    "fetch.message.max.bytes": 4 * 1024 * 1024,
})

# Watermarks: low 0, high = count.
for p in range(PARTITIONS):
    low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
    check((low, high) == (0, PER_PARTITION), f"partition {p} watermarks {(low, high)}")

# Consume from an offset in the middle of partition 1 and from 0 elsewhere.
start = {0: 0, 1: 57, 2: 0}
consumer.assign([TopicPartition(TOPIC, p, start[p]) for p in range(PARTITIONS)])
seen = {p: [] for p in range(PARTITIONS)}
want = sum(PER_PARTITION - start[p] for p in range(PARTITIONS))
end = deadline()
while sum(len(v) for v in seen.values()) < want and time.monotonic() < end:
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        fail(f"consume error: {msg.error()}")
    p, off = msg.partition(), msg.offset()
    i = start[p] + len(seen[p])
    check(off == i, f"partition {p}: got offset {off}, expected {i}")
    check(msg.value() == payload("ck", p, i), f"partition {p} offset {off}: wrong value {msg.value()!r}")
    check(msg.key() == f"k-{i}".encode(), f"partition {p} offset {off}: wrong key {msg.key()!r}")
    hdrs = msg.headers()
    if i % 2 == 0:
        check(hdrs == [("h-index", str(i).encode()), ("h-part", str(p).encode())], f"wrong headers {hdrs}")
    else:
        check(not hdrs, f"unexpected headers {hdrs}")
    check(msg.timestamp()[1] >= t_before, f"timestamp {msg.timestamp()} before the produce started")
    seen[p].append(off)
for p in range(PARTITIONS):
    check(len(seen[p]) == PER_PARTITION - start[p], f"partition {p}: consumed {len(seen[p])}")

# offsets_for_times: timestamp 0 -> first offset; far future -> end (-1).
res = consumer.offsets_for_times([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)], timeout=10)
for tp in res:
    check(tp.offset == 0, f"offsets_for_times(0) on partition {tp.partition}: {tp.offset}")
future_ms = int(time.time() * 1000) + 3_600_000
res = consumer.offsets_for_times([TopicPartition(TOPIC, 0, future_ms)], timeout=10)
check(res[0].offset in (-1, PER_PARTITION), f"offsets_for_times(future): {res[0].offset}")

# A 1 MiB message round trip on partition 0.
big = bytes((i * 7 + 3) % 251 for i in range(1024 * 1024))
big_acked = []


def on_big_delivery(err, msg):
    if err is not None:
        errors.append(err)
    else:
        big_acked.append(msg.offset())


producer.produce(TOPIC, partition=0, key=b"big", value=big, on_delivery=on_big_delivery)
check(producer.flush(30) == 0, "1 MiB message not delivered")
check(not errors, f"1 MiB message delivery error: {errors[:1]}")
check(big_acked == [PER_PARTITION], f"1 MiB message acked at {big_acked}, expected [{PER_PARTITION}]")
consumer.assign([TopicPartition(TOPIC, 0, PER_PARTITION)])
end = deadline()
got = None
while got is None and time.monotonic() < end:
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        fail(f"consume error on the 1 MiB message: {msg.error()}")
    got = msg
check(got is not None, "1 MiB message not consumed in time")
check(got.offset() == PER_PARTITION and got.value() == big, "1 MiB message came back different")

consumer.close()
print(f"ok: {PARTITIONS * PER_PARTITION + 1} messages produced and consumed on {TOPIC}")
