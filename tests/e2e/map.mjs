// End-to-end test of the map page in a real headless Chromium (Debian's chromium, driven
// by playwright-core). usage: node map.mjs HOST:PORT TOKEN OUT_DIR
// Prints what it checked; exits non-zero on the first failed check.
import { check, launch, sleep, until } from './browser.mjs';
import { mkdirSync, statSync } from 'node:fs';

const [addr, token, outDir] = process.argv.slice(2);
const base = `http://${addr}/`;
mkdirSync(outDir, { recursive: true });

const serverClock = async () => (await fetch(`${base}v1/clock`)).json();
const setClock = async (change) => {
  const res = await fetch(`${base}v1/clock`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(change),
  });
  if (!res.ok) throw new Error(`POST /v1/clock ${JSON.stringify(change)}: ${res.status} ${await res.text()}`);
};

// The colour of each point (CSS pixels) in a real screenshot of the page, decoded by the
// browser itself.
async function screenshotColours(page, path, points) {
  const png = await page.screenshot({ path });
  return page.evaluate(async ([b64, pts]) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    // The most common colour in a 9x9 block: a street line or a driver does not decide.
    return pts.map(([x, y]) => {
      const d = g.getImageData(Math.round(x) - 4, Math.round(y) - 4, 9, 9).data;
      const seen = new Map();
      for (let i = 0; i < d.length; i += 4) {
        const k = `${d[i]},${d[i + 1]},${d[i + 2]}`;
        seen.set(k, (seen.get(k) || 0) + 1);
      }
      return [...seen].sort((a, b) => b[1] - a[1])[0][0];
    });
  }, [png.toString('base64'), points]);
}
const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(',');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  const requests = [];
  const watch = (p) => {
    p.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    p.on('pageerror', (e) => errors.push(String(e)));
    p.on('request', (r) => requests.push(r.url()));
  };
  watch(page);

  // A viewer: no token, no controls.
  await page.goto(base);
  await until('the first events', () => page.evaluate(() => window.caspersMap.received > 0));
  check(!(await page.isVisible('#controls')), 'a viewer sees no presenter controls');

  const clock1 = await page.textContent('#clock');
  await sleep(1500);
  const clock2 = await page.textContent('#clock');
  check(clock1 !== clock2 && /day \d+/.test(clock2), `the clock advances (${clock1} -> ${clock2})`);

  // The WebSocket stream, from the browser itself (it offers permessage-deflate and the
  // server accepts it): the clock message, then events for the filter.
  const ws = await page.evaluate(() => new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${location.host}/v1/ws?location_id=3`);
    const seen = { clock: false, events: 0, other: false, extensions: null };
    socket.onopen = () => { seen.extensions = socket.extensions; };
    socket.onmessage = (m) => {
      const v = JSON.parse(m.data);
      if (v.type === 'clock') seen.clock = true;
      else if (v.type === 'events') {
        seen.events += v.events.length;
        seen.other = seen.other || v.events.some((e) => e.location_id !== 3);
        if (seen.events >= 3) { socket.close(1000); resolve(seen); }
      }
    };
    socket.onerror = () => reject(new Error('websocket error'));
    setTimeout(() => resolve(seen), 15000);
  }));
  check(ws.clock && ws.events >= 3 && !ws.other,
    `a browser WebSocket gets the clock and events for its filter (${JSON.stringify(ws)})`);

  // San Francisco first: drivers on the road, drawn, moving from ping to ping.
  const drawn = () => page.evaluate(() => window.caspersMap.drawn);
  const first = await until('drivers drawn', async () => { const d = await drawn(); return d.length ? d : null; });
  check(first.every((d) => d.loc === 1), `${first.length} San Francisco drivers drawn, no other city's`);
  const positions = () => page.evaluate(() =>
    [...window.caspersMap.orders.entries()].filter(([, o]) => o.stage === 'road' && o.pos)
      .map(([id, o]) => [id, o.pos[0], o.pos[1]]));
  let previous = new Map((await positions()).map((d) => [d[0], d]));
  await until('a driver to move', async () => {
    const now = await positions();
    const moved = now.some((d) => previous.has(d[0]) &&
      (previous.get(d[0])[1] !== d[1] || previous.get(d[0])[2] !== d[2]));
    previous = new Map(now.map((d) => [d[0], d]));
    return moved;
  }, 20000);
  check(true, 'drivers move as their pings arrive');
  const onRoad = await until('the header to count drivers', async () => Number(await page.textContent('#on-road')));
  check(onRoad > 0, `the header counts ${onRoad} drivers on the road`);

  // The base map: water where the Bay is, land where the city is, in a screenshot.
  const box = await page.locator('#map').boundingBox();
  const at = async (lat, lon) => {
    const [x, y] = await page.evaluate(([a, b]) => window.caspersMap.project(0, a, b), [lat, lon]);
    return [box.x + x, box.y + y];
  };
  const colors = await page.evaluate(() => window.caspersMap.colors);
  const [bay, city] = await screenshotColours(page, `${outDir}/map.png`,
    [await at(37.80, -122.36), await at(37.76, -122.435)]);
  check(bay === rgb(colors.water), `the Bay is water on the map (${bay})`);
  check(city === rgb(colors.land), `San Francisco is land on the map (${city})`);
  check(statSync(`${outDir}/map.png`).size > 20000, 'the screenshot is not blank');
  check((await page.textContent('#attribution')).includes('OpenStreetMap'), 'the map credits OpenStreetMap');

  // Wheel zoom changes the scale; a double click fits the city again.
  const scale0 = await page.evaluate(() => window.caspersMap.scale(0));
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -600);
  const scale1 = await until('the zoom', async () => {
    const s = await page.evaluate(() => window.caspersMap.scale(0));
    return s > scale0 * 1.5 ? s : null;
  });
  check(true, `a wheel zoom changes the scale (${scale0.toFixed(0)} -> ${scale1.toFixed(0)} px per degree)`);
  await page.mouse.dblclick(box.x + box.width / 2, box.y + box.height / 2);
  // The fit frames the orders in flight, which change as the clock runs: back near the
  // first fit (the zoom was 2.5x), not to the pixel.
  await until('the fit again', async () => Math.abs(await page.evaluate(() => window.caspersMap.scale(0)) - scale0) < scale0 * 0.25);

  // Hovering a driver shows its order.
  const tip = await until('a tooltip on a driver', async () => {
    const d = (await drawn())[0];
    if (!d) return null;
    await page.mouse.move(box.x + d.x, box.y + d.y);
    await sleep(50);
    const text = await page.textContent('#tip');
    return (await page.isVisible('#tip')) && /order \w+ on the road/.test(text) ? text : null;
  });
  check(true, `hovering a driver shows its order (${tip.slice(0, 80)}…)`);
  await page.mouse.move(box.x + 5, box.y + box.height - 5);

  // The overview: four panes, four cards.
  await page.click('#views button:nth-child(5)');
  const panes = await page.evaluate(() => window.caspersMap.panes.length);
  const cards = await page.locator('#panel .card').count();
  check(panes === 4 && cards === 4, `the overview shows four panes and four city panels (${panes}, ${cards})`);
  await until('drivers of several cities in the overview', async () =>
    new Set((await drawn()).map((d) => d.loc)).size >= 2);
  await page.screenshot({ path: `${outDir}/map-overview.png` });

  // Chicago alone.
  await page.click('#views button:nth-child(4)');
  await until('Chicago drivers', async () => {
    const d = await drawn();
    return d.length > 0 && d.every((x) => x.loc === 4);
  });
  check(true, 'the Chicago view draws only Chicago drivers');
  await page.screenshot({ path: `${outDir}/map-chicago.png` });

  // A presenter: the token shows the controls; keyboard shortcuts change the server's clock.
  const presenter = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  watch(presenter);
  const opened = await presenter.goto(`${base}?token=${token}`);
  check(opened.headers()['referrer-policy'] === 'no-referrer', 'the page is served with Referrer-Policy: no-referrer');
  await presenter.waitForSelector('#controls', { state: 'visible' });
  check(true, 'the presenter sees the controls');
  check(!presenter.url().includes(token), `the token leaves the address bar at once (${presenter.url()})`);
  await presenter.reload();
  await presenter.waitForSelector('#controls', { state: 'visible' });
  check(!presenter.url().includes(token), 'after a reload the controls are still there, the token still out of the URL');
  await presenter.keyboard.press('3');
  await until('key 3 to set 3600x', async () => (await serverClock()).speed === 3600);
  check(true, 'key 3 sets the server to 3600x');
  await until('the audience notice', async () =>
    (await page.getAttribute('#notice', 'class')) === 'shown' && (await page.textContent('#notice')) === '3600x');
  check(true, 'the audience sees the speed change announced');
  await presenter.keyboard.press(' ');
  await until('space to pause', async () => (await serverClock()).paused);
  // The page toggles from the clock it knows: wait until it has heard of the pause.
  await until('the presenter page to show the pause', async () =>
    (await presenter.textContent('#pause')) === 'resume');
  await presenter.keyboard.press(' ');
  await until('space to resume', async () => !(await serverClock()).paused);
  check(true, 'space pauses and resumes the server clock');
  await page.keyboard.press('1');
  await page.keyboard.press(' ');
  await sleep(600);
  const after = await serverClock();
  check(after.speed === 3600 && !after.paused, 'a viewer\'s keys change nothing on the server');

  // A simulated day at 86400x fills the hourly chart.
  await presenter.keyboard.press('4');
  await until('86400x', async () => (await serverClock()).speed === 86400);
  const bars = await until('the hourly chart', async () => {
    const n = Number(await page.getAttribute('#panel .card canvas', 'data-bars'));
    return n >= 12 ? n : null;
  }, 15000);
  check(true, `after a simulated day at 86400x the hourly chart has ${bars} bars`);
  await page.screenshot({ path: `${outDir}/map-chicago-day.png` });

  await presenter.click('#controls button[data-speed="3600"]');
  await until('the preset click', async () => (await serverClock()).speed === 3600);
  check(true, 'a click on 3600x changes the server speed');
  await presenter.fill('#speed-input', '1234');
  await presenter.click('#speed-set');
  await until('the free speed', async () => (await serverClock()).speed === 1234);
  check(true, 'a free speed value is set on the server');
  await presenter.fill('#day-input', '0');
  await presenter.click('#day-go');
  await until('the jump to day 0', async () => (await serverClock()).day === 0);
  check(true, 'jump to a day moves the server clock');
  // A jump while orders are in flight: they would never finish (the events between the two
  // times are skipped), so the snapshot after the seek replaces them on every viewer.
  await setClock({ seek: '2024-01-02 18:00:00', speed: 600, paused: false });
  await until('orders in flight on the viewer', () => page.evaluate(() => window.caspersMap.orders.size > 5));
  await setClock({ seek_day: 0, paused: true });
  await until('the viewer to drop the orders the jump made stale', () => page.evaluate(() => {
    const m = window.caspersMap;
    const now = m.simClock.now();
    return m.clock !== null && m.clock.day === 0
      && [...m.orders.values()].every((o) => o.created === undefined || o.created <= now + 1);
  }));
  check(true, 'after a jump the viewer shows only the orders in flight at the new time');
  await presenter.click('#controls button[data-speed="3600"]');
  // (86400x may have run the small dataset to its end: the clock is paused after the jump.)
  const was = (await serverClock()).paused;
  await presenter.click('#pause');
  await until('the pause button to toggle the clock', async () => (await serverClock()).paused !== was);
  check(true, 'the pause button pauses and resumes the server clock');
  await until('the viewer to see the new speed', async () => (await page.textContent('#speed')) === '3600x');
  check(true, 'the viewer sees the same clock change');
  await presenter.screenshot({ path: `${outDir}/presenter.png` });

  // Rehearse from here: a session of its own at the shared clock's instant, in a new tab.
  const rehearseAt = Date.parse('2024-01-02T18:00:00Z') / 1000;
  await setClock({ seek: '2024-01-02 18:00:00', paused: true, speed: 600 });
  await until('the presenter page to hear of the seek', () => presenter.evaluate((t) =>
    window.caspersMap.clock !== null && window.caspersMap.clock.paused && window.caspersMap.clock.sim_time === t, rehearseAt));
  const [rehearsal] = await Promise.all([presenter.context().waitForEvent('page'), presenter.click('#rehearse')]);
  watch(rehearsal);
  await rehearsal.waitForSelector('#controls', { state: 'visible' });
  const id = await presenter.getAttribute('#rehearse', 'data-opened');
  const made = await (await fetch(`${base}v1/sessions/${id}`)).json();
  check(made.clock.sim_time === rehearseAt && made.clock.paused && made.clock.speed === 600,
    `"rehearse from here" opens a session at the shared clock's instant and speed (${made.clock.sim_time_utc}, ${made.clock.speed}x, paused)`);
  check(!rehearsal.url().includes('token='), `the rehearsal tab takes its token out of the address bar (${rehearsal.url()})`);
  check(await rehearsal.isVisible('#session-label') && (await rehearsal.$('#rehearse')) === null,
    'the rehearsal tab says it is a rehearsal, and offers no rehearsal of it');
  await until('the rehearsal tab to know its clock', () => rehearsal.evaluate(() => window.caspersMap.clock !== null));
  await rehearsal.keyboard.press('3');
  await until('the rehearsal at 3600x', async () => (await (await fetch(`${base}v1/sessions/${id}/clock`)).json()).speed === 3600);
  await rehearsal.keyboard.press(' ');
  await until('the rehearsal running', async () => !(await (await fetch(`${base}v1/sessions/${id}/clock`)).json()).paused);
  const shared = await serverClock();
  check(shared.paused && shared.speed === 600 && shared.sim_time === rehearseAt,
    'the rehearsal\'s keys drive its own clock: the audience\'s did not move');
  await until('events on the rehearsal tab', () => rehearsal.evaluate(() => window.caspersMap.received > 20));
  check(true, 'the rehearsal tab receives its own clock\'s events');
  await rehearsal.close();

  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
  const outside = requests.filter((u) => !u.startsWith(base) && !u.startsWith('data:'));
  check(outside.length === 0, `no request leaves ${base} (${requests.length} requests; ${outside.join(' ')})`);
  await presenter.close();

  // The server restarts: the page reconnects by itself and goes on.
  await page.click('#views button:nth-child(1)');
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
