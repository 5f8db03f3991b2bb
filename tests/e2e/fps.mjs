// Frame rate of the map page under load, in headless Chromium: N drivers on the road, each
// pinging every frame (at 3600x a driver pings 60 times a wall second). Prints the figures.
// usage: node fps.mjs HOST:PORT DRIVERS SECONDS
import { launch } from './browser.mjs';

const [addr, drivers = '500', seconds = '5'] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`http://${addr}/`);
  await page.waitForFunction(() => window.caspersMap && window.caspersMap.kitchens.length > 0);
  const stats = await page.evaluate(async ([n, secs]) => {
    const map = window.caspersMap;
    const k = map.kitchens.find((x) => x.location_id === 1);
    const ev = (id, type, body) => ({ event_type: type, order_id: id, location_id: 1,
      ts: '2024-01-02 12:00:00.000', body: JSON.stringify(body) });
    const routes = [];
    for (let i = 0; i < n; i++) {
      // A staircase route of 60 points from the kitchen, as the generator makes them.
      const a = (i / n) * Math.PI * 2, r = 0.02 + (i % 7) * 0.004;
      const route = [];
      for (let j = 0; j < 60; j++) {
        const f = j / 59;
        route.push(j < 30 ? [k.lat + Math.sin(a) * r * f * 2, k.lon]
          : [k.lat + Math.sin(a) * r, k.lon + Math.cos(a) * r * (f - 0.5) * 2]);
      }
      routes.push(route);
      map.queue.push(ev(`D${i}`, 'order_created', {}));
      map.queue.push(ev(`D${i}`, 'driver_picked_up', { route_points: route }));
    }
    const times = [];
    let step = 0;
    await new Promise((done) => {
      const start = performance.now();
      const tick = (t) => {
        times.push(t);
        step++;
        for (let i = 0; i < n; i++) {
          const p = routes[i][step % 60];
          map.queue.push(ev(`D${i}`, 'driver_ping', { progress_pct: 50, loc_lat: p[0], loc_lon: p[1] }));
        }
        if (t - start < secs * 1000) requestAnimationFrame(tick); else done();
      };
      requestAnimationFrame(tick);
    });
    const gaps = times.slice(1).map((t, i) => t - times[i]).sort((x, y) => x - y);
    const onRoad = [...map.orders.values()].filter((o) => o.stage === 'road').length;
    return { frames: times.length, secs, onRoad,
      fps: (times.length - 1) / ((times.at(-1) - times[0]) / 1000),
      p50: gaps[Math.floor(gaps.length / 2)], p95: gaps[Math.floor(gaps.length * 0.95)] };
  }, [Number(drivers), Number(seconds)]);
  console.log(`map page, ${stats.onRoad} drivers on the road, each pinging every frame ` +
    `(${Math.round(stats.onRoad * stats.fps)} events/s): ${stats.fps.toFixed(1)} frames/s, ` +
    `frame interval p50 ${stats.p50.toFixed(1)} ms, p95 ${stats.p95.toFixed(1)} ms`);
} finally {
  await browser.close();
}
