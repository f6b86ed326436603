"""confluent-kafka admin client on consumer groups: list, describe, list
offsets, delete (refused while the group has members)."""
import time
import uuid

from confluent_kafka import (ConsumerGroupState, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from common import BOOTSTRAP, check, deadline, fail

PARTITIONS = 3
topic = f"adm-{uuid.uuid4().hex[:8]}"
group = f"g-{topic}"
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(timeout=30)
p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})
for i in range(30):
    p.produce(topic, partition=i % PARTITIONS, value=b"x")
check(p.flush(30) == 0, "produce did not finish")

c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "client.id": "adm-member"})
c.subscribe([topic])
end = deadline()
read = 0
while (len(c.assignment()) < PARTITIONS or read < 30) and time.monotonic() < end:
    m = c.poll(0.2)
    if m is not None and not m.error():
        read += 1
check(len(c.assignment()) == PARTITIONS and read == 30, f"assigned {c.assignment()}, read {read}")
c.commit(asynchronous=False)

listed = admin.list_consumer_groups().result(timeout=30)
mine = [g for g in listed.valid if g.group_id == group]
check(len(mine) == 1, f"{group} not listed: {[g.group_id for g in listed.valid]}")
check(mine[0].state == ConsumerGroupState.STABLE, f"state {mine[0].state}")
check(not mine[0].is_simple_consumer_group, "a subscribed group is not a simple one")

desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
check(desc.state == ConsumerGroupState.STABLE, f"described state {desc.state}")
check(len(desc.members) == 1, f"members {desc.members}")
member = desc.members[0]
check(member.client_id == "adm-member", f"client id {member.client_id}")
check(member.host.startswith("/127.0.0.1"), f"client host {member.host}")
got = sorted(tp.partition for tp in member.assignment.topic_partitions)
check(got == list(range(PARTITIONS)), f"described assignment {got}")

offs = admin.list_consumer_group_offsets(
    [__import__("confluent_kafka").ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
check(sorted((tp.partition, tp.offset) for tp in offs.topic_partitions) ==
      [(q, 10) for q in range(PARTITIONS)], f"listed offsets {offs.topic_partitions}")

try:
    admin.delete_consumer_groups([group])[group].result(timeout=30)
    fail("deleting a group with members succeeded")
except KafkaException as e:
    check(e.args[0].code() == KafkaError.NON_EMPTY_GROUP, f"delete while active: {e}")

c.close()
end = deadline()
while time.monotonic() < end:
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    if d.state == ConsumerGroupState.EMPTY:
        break
    time.sleep(0.2)
check(d.state == ConsumerGroupState.EMPTY, f"state after close {d.state}")
admin.delete_consumer_groups([group])[group].result(timeout=30)
listed = admin.list_consumer_groups().result(timeout=30)
check(all(g.group_id != group for g in listed.valid), "deleted group still listed")
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
left = c.committed([TopicPartition(topic, q) for q in range(PARTITIONS)], timeout=20)
c.close()
check(all(tp.offset < 0 for tp in left), f"offsets survived the group's deletion: {left}")
print("ok")
