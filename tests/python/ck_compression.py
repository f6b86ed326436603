"""confluent-kafka: each compression codec round trips; batches are stored
and served as the client compressed them."""
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import BOOTSTRAP, check, deadline, fail, payload

N = 500
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
for codec in ["gzip", "snappy", "lz4", "zstd"]:
    topic = f"cz-{codec}-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "acks": "all",
        "compression.type": codec,
        "linger.ms": 20,
    })
    errors = []
    for i in range(N):
        # Repetitive values compress well, so batches really are compressed.
        producer.produce(topic, partition=0, value=payload(codec, 0, i, size=300),
                         on_delivery=lambda err, msg: err and errors.append(err))
    check(producer.flush(30) == 0, f"{codec}: not all delivered")
    check(not errors, f"{codec}: delivery errors {errors[:3]}")

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"g-{topic}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    end = deadline()
    while len(got) < N and time.monotonic() < end:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            fail(f"{codec}: consume error {msg.error()}")
        got.append((msg.offset(), msg.value()))
    consumer.close()
    check(len(got) == N, f"{codec}: consumed {len(got)} of {N}")
    for i, (off, val) in enumerate(got):
        check(off == i, f"{codec}: offset {off} at position {i}")
        check(val == payload(codec, 0, i, size=300), f"{codec}: wrong value at offset {off}")
    print(f"ok: {codec}: {N} messages")
