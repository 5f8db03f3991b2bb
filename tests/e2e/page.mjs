// A page of another origin, driven by a Rust test: this script serves an empty page from its
// own port of 127.0.0.1 (another origin than the caspers-replay server's), opens it in
// headless Chromium, prints "ready ORIGIN", then evaluates each line of stdin in the page
// (a JavaScript expression, awaited) and prints its result as one JSON line ("error: ..."
// when it throws). It ends when stdin closes.
// usage: node page.mjs [HTML_FILE | DIR [QUERY]]   (the page served: HTML_FILE, an app
// built into DIR (its index.html and the files beside it), or an empty one; opened with
// ?QUERY)
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { createInterface } from 'node:readline';
import { launch } from './browser.mjs';

const [file, query] = process.argv.slice(2);
const dir = file && statSync(file).isDirectory() ? file : null;
const html = file && !dir ? readFileSync(file) : '<!doctype html><title>another origin</title><body>an app of its own</body>';
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };
const site = createServer((req, res) => {
  if (dir) {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const target = join(dir, path === '/' ? 'index.html' : path);
    if (!target.startsWith(dir) || !existsSync(target) || statSync(target).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(target)] ?? 'application/octet-stream' });
    res.end(readFileSync(target));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(html);
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${site.address().port}`;
const browser = await launch();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${origin}/${query ? `?${query}` : ''}`);
  console.log(`ready ${origin}`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    try {
      const value = await page.evaluate(`(async () => (${line}))()`);
      console.log(JSON.stringify(value === undefined ? null : value));
    } catch (e) {
      console.log(JSON.stringify(`error: ${e.message.split('\n')[0]}`));
    }
    if (errors.length) console.error(`page errors: ${errors.splice(0).join(' | ')}`);
  }
} finally {
  await browser.close();
  site.close();
}
