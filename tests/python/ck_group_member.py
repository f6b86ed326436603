"""A confluent-kafka (librdkafka) consumer in group GROUP on topic TOPIC:
reads everything there is, commits, prints "ready" and stays a member,
polling, until its standard input closes; then it closes (leaves the
group). Used to check that `spindle group describe` reads another
client's assignments, and that `spindle consume --group` shares a group
with it."""
import sys
import threading
import time

from confluent_kafka import Consumer

from common import BOOTSTRAP, check, deadline

topic, group, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "client.id": "ck-member"})
c.subscribe([topic])
end = deadline()
read = 0
while read < expected and time.monotonic() < end:
    m = c.poll(0.2)
    if m is not None and not m.error():
        read += 1
check(read == expected, f"read {read} of {expected}")
c.commit(asynchronous=False)
print("ready", flush=True)
closed = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
while not closed.is_set() and time.monotonic() < end + 60:
    c.poll(0.2)
c.close()
print("ok", flush=True)
