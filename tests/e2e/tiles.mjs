// The map page with an online tile layer (serve --tiles), in headless Chromium.
// usage: node tiles.mjs HOST:PORT TILE_BASE OUT_DIR
// Prints what it checked; exits non-zero on the first failed check.
import { check, launch, sleep } from './browser.mjs';

const [addr, tileBase, outDir] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  const tiles = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => r.url().startsWith(tileBase) && tiles.push(r.url()));
  await page.goto(`http://${addr}/`);
  await sleep(3000);
  check(tiles.length >= 4, `the page asks the tile server for the city's tiles (${tiles.length})`);
  check((await page.textContent('#attribution')).includes('tiles'), 'the tiles\' attribution is shown');
  await page.screenshot({ path: `${outDir}/map-tiles.png` });
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
} finally {
  await browser.close();
}
