// A real headless Chromium subscribes to the WebSocket stream and keeps every message as
// it came (its raw text), for the Rust test to compare with the dataset byte for byte.
// usage: node websocket.mjs HOST:PORT QUERY OUT_FILE
// Prints "ready extensions=<negotiated>" once connected, then reads from stdin how many
// events to wait for, writes the messages (one JSON text a line) to OUT_FILE and exits.
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { launch } from './browser.mjs';

const [addr, query, outFile] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(`http://${addr}/healthz`);
  const extensions = await page.evaluate((q) => new Promise((resolve, reject) => {
    window.received = { messages: [], events: 0 };
    const socket = new WebSocket(`ws://${location.host}/v1/ws${q}`);
    socket.onmessage = (m) => {
      window.received.messages.push(m.data);
      const v = JSON.parse(m.data);
      if (v.type === 'events') window.received.events += v.events.length;
      if (v.type === 'clock') resolve(socket.extensions);
    };
    socket.onerror = () => reject(new Error('websocket error'));
    window.socket = socket;
  }), query);
  console.log(`ready extensions=${extensions}`);
  const lines = createInterface({ input: process.stdin });
  const want = Number((await lines[Symbol.asyncIterator]().next()).value);
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && await page.evaluate(() => window.received.events) < want) {
    await new Promise((r) => setTimeout(r, 100));
  }
  // A filter message goes out compressed when deflate was negotiated: the server must
  // read it and answer.
  const answer = await page.evaluate(() => new Promise((resolve) => {
    window.socket.onmessage = (m) => {
      const v = JSON.parse(m.data);
      if (v.type === 'error') resolve(v.message);
    };
    window.socket.send(JSON.stringify({ type: 'filter', location_id: [77] }));
    setTimeout(() => resolve(null), 5000);
  }));
  const messages = await page.evaluate(() => window.received.messages);
  writeFileSync(outFile, messages.join('\n') + '\n');
  console.log(`answer=${answer}`);
  lines.close();
} finally {
  await browser.close();
}
