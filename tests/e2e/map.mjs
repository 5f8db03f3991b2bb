// End-to-end test of the map page in a real headless Chromium (Debian's chromium, driven
// by playwright-core). usage: node map.mjs HOST:PORT TOKEN OUT_DIR
// Prints what it checked; exits non-zero on the first failed check.
import { chromium } from 'playwright-core';
import { mkdirSync, statSync } from 'node:fs';

const [addr, token, outDir] = process.argv.slice(2);
const base = `http://${addr}/`;
mkdirSync(outDir, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`FAILED: timed out waiting for ${what}`);
    await sleep(100);
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));

  // A viewer: no token, no controls.
  await page.goto(base);
  await until('the first events', () => page.evaluate(() => window.caspersMap.received > 0));
  check(!(await page.isVisible('#controls')), 'a viewer sees no presenter controls');

  const clock1 = await page.textContent('#clock');
  await sleep(1500);
  const clock2 = await page.textContent('#clock');
  check(clock1 !== clock2 && /day \d+/.test(clock2), `the clock advances (${clock1} -> ${clock2})`);

  // Drivers on the road, moving from ping to ping.
  const drivers = () => page.evaluate(() =>
    [...window.caspersMap.orders.entries()].filter(([, o]) => o.stage === 'road' && o.pos)
      .map(([id, o]) => [id, o.pos[0], o.pos[1], o.loc]));
  const first = await until('drivers on the road', async () => { const d = await drivers(); return d.length ? d : null; });
  check(first.every((d) => d[3] === 1 || d[3] === 2), `${first.length} drivers in San Francisco + Silicon Valley`);
  // Sampled every 100 ms: some driver seen twice has moved (drivers come and go).
  let previous = new Map(first.map((d) => [d[0], d]));
  await until('a driver to move', async () => {
    const now = await drivers();
    const moved = now.some((d) => previous.has(d[0]) &&
      (previous.get(d[0])[1] !== d[1] || previous.get(d[0])[2] !== d[2]));
    previous = new Map(now.map((d) => [d[0], d]));
    return moved;
  }, 20000);
  check(true, 'drivers move as their pings arrive');
  const onRoad = await until('the header to count drivers', async () => Number(await page.textContent('#on-road')));
  check(onRoad > 0, `the header counts ${onRoad} drivers on the road`);

  // The canvas is drawn: not blank.
  const painted = await page.evaluate(() => {
    const c = document.getElementById('map');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 16) if (d[i] !== 15 || d[i + 1] !== 20 || d[i + 2] !== 25) n++;
    return n;
  });
  check(painted > 150, `the map is drawn (${painted} painted samples)`);
  const shot = `${outDir}/map.png`;
  await page.screenshot({ path: shot });
  check(statSync(shot).size > 20000, `screenshot ${shot} is not blank (${statSync(shot).size} bytes)`);

  // Switching city changes the subscription and what is shown.
  await page.click('#cities button:nth-child(3)');
  await until('Chicago drivers', async () => {
    const d = await drivers();
    return d.length > 0 && d.every((x) => x[3] === 4);
  });
  check(true, 'switching to Chicago shows only Chicago drivers');
  await page.screenshot({ path: `${outDir}/map-chicago.png` });

  // A presenter: the token in the URL shows the controls, and a preset changes the speed.
  const presenter = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  presenter.on('pageerror', (e) => errors.push(String(e)));
  presenter.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await presenter.goto(`${base}?token=${token}`);
  await presenter.waitForSelector('#controls', { state: 'visible' });
  check(true, 'the presenter sees the controls');
  await presenter.click('#controls button[data-speed="3600"]');
  const speed = await until('the server speed to change', async () => {
    const c = await (await fetch(`${base}v1/clock`)).json();
    return c.speed === 3600 ? c.speed : null;
  });
  check(speed === 3600, 'a click on 3600x changes the server speed');
  await presenter.fill('#speed-input', '1234');
  await presenter.click('#speed-set');
  await until('the free speed', async () => (await (await fetch(`${base}v1/clock`)).json()).speed === 1234);
  check(true, 'a free speed value is set on the server');
  await presenter.fill('#day-input', '0');
  await presenter.click('#day-go');
  await until('the jump to day 0', async () => (await (await fetch(`${base}v1/clock`)).json()).day === 0);
  check(true, 'jump to a day moves the server clock');
  await presenter.click('#controls button[data-speed="3600"]');
  await presenter.click('#pause');
  await until('the server to pause', async () => (await (await fetch(`${base}v1/clock`)).json()).paused);
  check(true, 'pause pauses the server clock');
  await until('the viewer to see the new speed', async () => (await page.textContent('#speed')) === '3600x');
  check(true, 'the viewer sees the same clock change');
  await presenter.screenshot({ path: `${outDir}/presenter.png` });

  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
  await presenter.close();

  // The server restarts: the page reconnects by itself and goes on.
  await page.click('#cities button:nth-child(1)');
  await until('events after switching back', () => page.evaluate(() => window.caspersMap.received > 0));
  console.log('restart-now');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.destroy(); // or the open pipe keeps node alive
  const before = await page.evaluate(() => window.caspersMap.received);
  await until('events from the restarted server', async () =>
    (await page.evaluate(() => window.caspersMap.received)) > before, 20000);
  check(true, 'after a server restart the page reconnects and receives events again');
} finally {
  await browser.close();
}
