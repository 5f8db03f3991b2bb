// The API documents against the real server: both parse with the ecosystem's own parsers
// (@asyncapi/parser, @readme/openapi-parser); every message a test session received is a
// message of its channel in the AsyncAPI document and valid against its payload schema (an
// event's body too, against its type's body schema); every REST answer has a documented
// status and, when JSON, matches its schema; the routes the server registers and the
// documented ones are the same; the AsyncAPI event schema says what schema/event.schema.json
// says.
// usage: node contract.mjs REPO_DIR SESSION_JSONL ROUTES_JSON
//   SESSION_JSONL: {"channel":"sse"|"websocket","name":...,"payload":...} per message, and
//                  {"rest":{"method","path","status","body"}} per REST answer.
//   ROUTES_JSON:   [["GET","/v1/clock"], ...] as the server registers them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from '@asyncapi/parser';
import { dereference, validate as validateOpenApi } from '@readme/openapi-parser';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020.js';
import { check } from './browser.mjs';

const [repo, sessionFile, routesFile] = process.argv.slice(2);
const asyncapiText = readFileSync(join(repo, 'docs/asyncapi.yaml'), 'utf8');
const eventSchema = JSON.parse(readFileSync(join(repo, 'schema/event.schema.json'), 'utf8'));

// 1. Both documents parse without error.
const { document, diagnostics } = await new Parser().parse(asyncapiText);
const errors = diagnostics.filter((d) => d.severity === 0);
check(document && errors.length === 0,
  `docs/asyncapi.yaml parses with @asyncapi/parser (${errors.map((d) => `${d.path.join('.')}: ${d.message}`).join('; ')})`);
const openapi = await validateOpenApi(join(repo, 'docs/openapi.yaml'));
check(openapi.valid, `docs/openapi.yaml validates with @readme/openapi-parser ${JSON.stringify(openapi.errors ?? [])}`);
const api = await dereference(join(repo, 'docs/openapi.yaml'));
const asyncapi = document.json();

// 2. The event as the AsyncAPI document describes it is schema/event.schema.json's.
const ev = asyncapi.components.schemas.Event;
check(JSON.stringify(ev.required) === JSON.stringify(eventSchema.required)
  && JSON.stringify(Object.keys(ev.properties)) === JSON.stringify(Object.keys(eventSchema.properties)),
'the AsyncAPI Event has the schema\'s fields, in its order');
check(JSON.stringify(asyncapi.components.schemas.EventType.enum) === JSON.stringify(eventSchema.properties.event_type.enum),
  'the AsyncAPI event types are the schema\'s');
const bodyOf = {};
for (const rule of eventSchema.allOf) {
  const name = rule.then.properties.body.contentSchema.$ref.replace('#/$defs/', '');
  bodyOf[rule.if.properties.event_type.const] = name;
  const shape = (x) => {
    const o = x.anyOf ? x.anyOf[0] : x;
    return JSON.stringify([Object.keys(o.properties ?? {}), o.required ?? [], o.maxProperties ?? null]);
  };
  check(asyncapi.components.schemas[name] && shape(asyncapi.components.schemas[name]) === shape(eventSchema.$defs[name]),
    `the AsyncAPI ${name} has the schema's members`);
}

// 3. Every message of the session is in the document and valid.
const ajv = new Ajv({ strict: false, allErrors: true });
const compiled = new Map();
const validator = (schema) => {
  if (!compiled.has(schema)) compiled.set(schema, ajv.compile(schema));
  return compiled.get(schema);
};
const session = readFileSync(sessionFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const seen = new Set();
for (const m of session.filter((x) => x.channel)) {
  const channel = asyncapi.channels[m.channel];
  if (!channel) check(false, `channel ${m.channel} is documented`);
  const candidates = Object.values(channel.messages).filter((d) => d.name === m.name);
  if (candidates.length === 0) check(false, `${m.channel} message '${m.name}' is documented`);
  const problems = [];
  const ok = candidates.some((d) => {
    const v = validator(d.payload);
    if (v(m.payload)) return true;
    problems.push(ajv.errorsText(v.errors));
    return false;
  });
  if (!ok) check(false, `${m.channel} '${m.name}' matches its schema: ${problems.join(' | ')}\n${JSON.stringify(m.payload).slice(0, 500)}`);
  const events = m.name === 'message' ? [m.payload] : (m.payload.events ?? []);
  for (const e of events) {
    const v = validator(asyncapi.components.schemas[bodyOf[e.event_type]]);
    if (!v(JSON.parse(e.body))) check(false, `the body of ${e.event_type} matches ${bodyOf[e.event_type]}: ${ajv.errorsText(v.errors)} in ${e.body}`);
  }
  seen.add(`${m.channel}:${m.name}`);
}
check(true, `every message of the session is documented and valid (${[...seen].sort().join(', ')})`);

// 4. REST answers: a documented status, and JSON that matches its schema.
const ajv2020 = new Ajv2020({ strict: false, allErrors: true });
let answers = 0;
// The document's path for a concrete one: itself, or a template (`/client/{file}`).
const pathOf = (path) => api.paths[path] ? path : Object.keys(api.paths).find((p) =>
  new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
for (const { rest } of session.filter((x) => x.rest)) {
  const op = api.paths[pathOf(rest.path)]?.[rest.method.toLowerCase()];
  if (!op) check(false, `${rest.method} ${rest.path} is documented`);
  const response = op.responses[String(rest.status)];
  if (!response) check(false, `${rest.method} ${rest.path} answered ${rest.status}, a status the document lists (${Object.keys(op.responses)})`);
  if (rest.type && !response.content?.[rest.type]) check(false, `${rest.method} ${rest.path} ${rest.status} answered ${rest.type}, a type the document lists (${Object.keys(response.content ?? {})})`);
  const schema = rest.type === 'application/json' ? response.content?.['application/json']?.schema : null;
  if (schema) {
    const v = ajv2020.compile(schema);
    if (!v(JSON.parse(rest.body))) check(false, `${rest.method} ${rest.path} ${rest.status} matches its schema: ${ajv2020.errorsText(v.errors)}\n${rest.body}`);
  }
  answers += 1;
}
check(answers > 0, `${answers} REST answers have documented statuses and match their schemas`);

// 5. The routes the server has are the documented ones, no more, no fewer.
const routes = JSON.parse(readFileSync(routesFile, 'utf8')).map(([m, p]) => `${m} ${p}`).sort();
const documented = Object.entries(api.paths)
  .flatMap(([p, item]) => Object.keys(item).filter((k) => ['get', 'post', 'put', 'delete', 'patch'].includes(k)).map((k) => `${k.toUpperCase()} ${p}`))
  .sort();
const missing = routes.filter((r) => !documented.includes(r));
const extra = documented.filter((r) => !routes.includes(r));
check(missing.length === 0 && extra.length === 0,
  `the server's ${routes.length} routes are the OpenAPI document's (missing: ${missing.join(', ') || 'none'}; not served: ${extra.join(', ') || 'none'})`);
