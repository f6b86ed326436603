// kafkajs group consumer: reads everything exactly once (content checked),
// commits, and a restarted member of the group re-reads nothing.
const { Kafka, logLevel } = require('kafkajs');

const BOOTSTRAP = process.env.BOOTSTRAP || '127.0.0.1:9092';
const DEADLINE_MS = 60000;
const PARTITIONS = 3;
const N = 300;
const topic = `kjs-${Math.random().toString(16).slice(2, 10)}`;
const groupId = `g-${topic}`;
const kafka = new Kafka({ clientId: 'kafkajs-test', brokers: [BOOTSTRAP], logLevel: logLevel.ERROR });

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

async function consumeFor(ms, onMessage) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ partition, message }) => onMessage(partition, message) });
  return consumer;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  await admin.disconnect();

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < N; i++) messages.push({ partition: i % PARTITIONS, value: `kjs-${i}` });
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const seen = new Map();
  let consumer = await consumeFor(DEADLINE_MS, (partition, message) => {
    const key = `${partition}/${message.offset}`;
    if (seen.has(key)) fail(`${key} read twice`);
    const i = Number(message.value.toString().slice(4));
    if (i % PARTITIONS !== partition) fail(`${key}: value ${message.value} on the wrong partition`);
    seen.set(key, i);
  });
  const end = Date.now() + DEADLINE_MS;
  while (seen.size < N && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect(); // commits what was processed
  if (seen.size !== N) fail(`read ${seen.size} of ${N}`);
  const values = [...seen.values()].sort((a, b) => a - b);
  values.forEach((v, i) => { if (v !== i) fail(`value ${i} missing`); });

  // Restarted: it must resume at the commits. New records (one per
  // partition) prove it is consuming; anything older is a re-read.
  const after = [];
  consumer = await consumeFor(DEADLINE_MS, (partition, message) => {
    after.push(message.value.toString());
  });
  await producer.connect();
  const fresh = [];
  for (let p = 0; p < PARTITIONS; p++) fresh.push({ partition: p, value: `new-${p}` });
  await producer.send({ topic, acks: -1, messages: fresh });
  await producer.disconnect();
  const end2 = Date.now() + DEADLINE_MS;
  while (after.length < PARTITIONS && Date.now() < end2) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect();
  const old = after.filter((v) => !v.startsWith('new-'));
  if (old.length !== 0) fail(`${old.length} messages re-read after a committed restart`);
  if (after.length !== PARTITIONS) fail(`read ${after.length} of the ${PARTITIONS} new records after the restart`);
  console.log(`ok: ${N} read exactly once by the group; after a restart only the ${PARTITIONS} new ones`);
}

const timer = setTimeout(() => fail('timed out'), 2 * DEADLINE_MS);
main().then(() => { clearTimeout(timer); process.exit(0); }, (e) => fail(e.stack || e));
