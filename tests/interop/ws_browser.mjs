// ws_browser.mjs - headless Chromium (Debian's /usr/bin/chromium, driven by
// puppeteer-core) loads ws_browser.html, which uses MQTT.js's browser
// bundle, and connects to WS_URL (ws:// or wss://; for wss the browser
// started here ignores certificate errors: the dev CA is not in its
// store). Against mqttd's plain listener on PLAIN_PORT the real
// mosquitto_pub and mosquitto_sub check both directions, and a 1 MiB
// binary payload makes the round trip byte-exact (the browser compares,
// mosquitto_sub's copy has the same SHA-256). Prints "browser ok".
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import puppeteer from 'puppeteer-core';

const URL = process.env.WS_URL;
const PLAIN = process.env.PLAIN_PORT;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const T = 150000;
const tag = `${process.pid}-${URL.split(':')[0]}`;

function fail(why) {
  console.log(`FAIL (${URL}): ${why}`);
  process.exit(1);
}
const timer = setTimeout(() => fail(`timed out after ${T} ms`), T);

// mosquitto_sub for one message; resolves with the raw payload once it
// has received its SUBACK (-d prints it), and then with the message.
function mosquittoSub(topic) {
  // stdbuf: its stdout is a pipe, and the SUBACK line must not wait
  const p = spawn('stdbuf', ['-o0', 'mosquitto_sub', '-h', '127.0.0.1', '-p', PLAIN,
                             '-t', topic, '-C', '1', '-N', '-q', '1', '-d']);
  const chunks = [];
  let subscribed;
  const ready = new Promise((resolve) => (subscribed = resolve));
  p.stdout.on('data', (d) => {
    chunks.push(d);
    if (Buffer.concat(chunks).includes('received SUBACK')) subscribed();
  });
  const done = new Promise((resolve, reject) => p.on('exit', (code) =>
    code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`mosquitto_sub ${code}`))));
  return { ready, done };
}

function mosquittoPub(topic, msg) {
  return new Promise((resolve, reject) => {
    const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', PLAIN, '-t', topic,
                                      '-m', msg, '-q', '1'], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub ${code}`))));
  });
}

const args = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'];
if (URL.startsWith('wss:')) args.push('--ignore-certificate-errors');
const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args,
                                         timeout: 90000 });
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  page.on('pageerror', (e) => fail(`page error: ${e}`));
  await page.goto(pathToFileURL(path.join(HERE, 'ws_browser.html')).href);
  const tIn = `browser/in/${tag}`, tOut = `browser/out/${tag}`, tBig = `browser/big/${tag}`;
  const granted = await page.evaluate((u, t) => window.start(u, t), URL, [tIn, tBig]);
  if (granted.join() !== '1,1') fail(`granted ${granted}`);

  // mosquitto_pub on the plain listener -> the browser
  const got = page.evaluate((t) => window.nextText(t), tIn);
  await mosquittoPub(tIn, 'hello browser');
  if ((await got) !== 'hello browser') fail(`browser got ${await got}`);

  // the browser -> mosquitto_sub on the plain listener
  const out = mosquittoSub(tOut);
  await out.ready;
  await page.evaluate((t) => window.publishText(t, 'hello from the browser'), tOut);
  // -N: the payload runs into the next debug line
  const text = (await out.done).toString();
  if (!/received PUBLISH [^\n]*\(22 bytes\)\)\n(Client [^\n]*\n)*hello from the browser/.test(text))
    fail(`mosquitto_sub got ${text}`);

  // 1 MiB binary round trip, also seen by mosquitto_sub
  const big = mosquittoSub(tBig);
  await big.ready;
  const r = await page.evaluate((t) => window.roundTrip(t, 1 << 20), tBig);
  if (!r.same || r.length !== 1 << 20) fail(`1 MiB round trip: ${JSON.stringify(r)}`);
  const raw = await big.done;
  // -d surrounds the payload with debug lines: it follows the line
  // "Client ... received PUBLISH (..., '<topic>', ... (1048576 bytes))"
  // and the PUBACK line after it
  let start = raw.indexOf('(1048576 bytes))\n', raw.indexOf('received PUBLISH'));
  if (start < 0) fail('mosquitto_sub printed no 1 MiB PUBLISH');
  start = raw.indexOf('\n', start) + 1;
  while (raw.subarray(start, start + 7).toString() === 'Client ')
    start = raw.indexOf('\n', start) + 1;
  const seen = createHash('sha256').update(raw.subarray(start, start + (1 << 20))).digest('hex');
  if (seen !== r.sha256) fail('mosquitto_sub did not get the same 1 MiB');
  await page.evaluate(() => window.stop());
} finally {
  await browser.close();
}
clearTimeout(timer);
console.log(`browser ok ${URL}`);
