// ws_qos1_order.mjs - MQTT.js over WebSockets (WS_URL): a v5 subscriber
// and a v3.1.1 publisher, COUNT QoS 1 messages published back to back;
// every PUBACK arrives and the subscriber gets every message once, in
// order. Run by tests/integration/test_websockets.py; prints
// "ok N in order" and exits 0, or exits 1 with the reason.
import mqtt from 'mqtt';

const URL = process.env.WS_URL;
const COUNT = Number(process.env.COUNT || 1000);
const T = 60000;
const timer = setTimeout(() => fail(`timed out after ${T} ms`), T);

function fail(why) {
  console.log(`FAIL: ${why}`);
  process.exit(1);
}

function connect(opts) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(URL, { reconnectPeriod: 0, connectTimeout: 10000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

const topic = `ws/order/${process.pid}`;
const sub = await connect({ protocolVersion: 5, clientId: `wsub-${process.pid}` });
let next = 0;
const done = new Promise((resolve) => {
  sub.on('message', (t, payload, packet) => {
    if (packet.qos !== 1) fail(`qos ${packet.qos}`);
    const n = Number(payload.toString());
    if (n !== next) fail(`got ${n}, expected ${next}`);
    next++;
    if (next === COUNT) resolve();
  });
});
await sub.subscribeAsync(topic, { qos: 1 });
const pubc = await connect({ protocolVersion: 4, clientId: `wpub-${process.pid}` });
const acks = [];
for (let i = 0; i < COUNT; i++)
  acks.push(pubc.publishAsync(topic, String(i), { qos: 1 }));
await Promise.all(acks);
await done;
clearTimeout(timer);
await pubc.endAsync();
await sub.endAsync();
console.log(`ok ${next} in order`);
