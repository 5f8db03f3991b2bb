// Builds the package into dist/ (or OUT): the event types from the schema, the declarations
// (tsc, strict), and two ES modules with source maps: caspers-replay.js, with nothing to
// import (the server serves it as it is), and react.js, which imports react and
// ./caspers-replay.js.
// usage: node scripts/build.mjs [--out OUT] [--no-generate]
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const at = args.indexOf('--out');
const out = at >= 0 ? args[at + 1] : join(root, 'dist');
const run = (...cmd) => execFileSync(process.execPath, cmd, { cwd: root, stdio: 'inherit' });

if (!args.includes('--no-generate')) run('scripts/types-from-schema.mjs');
run('node_modules/typescript/bin/tsc', '-p', '.', '--outDir', out);
const common = {
  bundle: true,
  format: 'esm',
  target: 'es2020',
  legalComments: 'none',
  sourcemap: true,
  logLevel: 'warning',
  absWorkingDir: root,
};
await build({ ...common, entryPoints: ['src/caspers-replay.ts'], outfile: join(out, 'caspers-replay.js') });
await build({
  ...common,
  entryPoints: ['src/react.ts'],
  outfile: join(out, 'react.js'),
  external: ['react', './caspers-replay.js'],
});
