// Writes src/events.generated.ts from the repository's schema/event.schema.json, so the
// client's event and body types are the schema's and cannot drift from it (the crate's
// tests run this script and compare its output with the committed file).
// usage: node scripts/types-from-schema.mjs [OUT_FILE]   (default: src/events.generated.ts)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const schemaPath = join(here, '../../../schema/event.schema.json');
const out = process.argv[2] ?? join(here, '../src/events.generated.ts');
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));

function fail(what) {
  throw new Error(`schema/event.schema.json: ${what} (extend types-from-schema.mjs)`);
}

/** The TypeScript type of a JSON Schema, for the subset the event schema uses. */
function typeOf(s, indent = '') {
  if (s.$ref) {
    const name = s.$ref.replace('#/$defs/', '');
    if (!schema.$defs?.[name]) fail(`unknown $ref ${s.$ref}`);
    return name;
  }
  if (s.anyOf) {
    // An object or the empty body: the empty one names the other's members as absent, so
    // that reading one gives `T | undefined` and checking it (`!== undefined`) narrows.
    const fields = s.anyOf.flatMap((x) => Object.keys(x.properties ?? {}));
    return s.anyOf
      .map((x) => (isEmpty(x) && fields.length
        ? `{ ${fields.map((f) => `${f}?: undefined;`).join(' ')} }`
        : typeOf(x, indent)))
      .join(' | ');
  }
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  switch (s.type) {
    case 'string': return 'string';
    case 'number': case 'integer': return 'number';
    case 'boolean': return 'boolean';
    case 'array':
      if (s.prefixItems) return `[${s.prefixItems.map((x) => typeOf(x, indent)).join(', ')}]`;
      return `${wrap(typeOf(s.items, indent))}[]`;
    case 'object': {
      // No members: reading any is a compile error.
      if (s.maxProperties === 0) return 'Record<never, never>';
      const required = new Set(s.required ?? []);
      const inner = `${indent}  `;
      const members = Object.entries(s.properties ?? {}).map(([k, v]) => {
        const doc = v.description ? `${inner}/** ${v.description} */\n` : '';
        return `${doc}${inner}${k}${required.has(k) ? '' : '?'}: ${typeOf(v, inner)};`;
      });
      return `{\n${members.join('\n')}\n${indent}}`;
    }
    default: return fail(`no TypeScript type for ${JSON.stringify(s)}`);
  }
}

/** Whether `s` is the object with no members (itself or by reference). */
function isEmpty(s) {
  const def = s.$ref ? schema.$defs?.[s.$ref.replace('#/$defs/', '')] : s;
  return def?.type === 'object' && def.maxProperties === 0;
}

const wrap = (t) => (/[|&]/.test(t) ? `(${t})` : t);

const lines = [
  '// Generated from schema/event.schema.json by scripts/types-from-schema.mjs: do not edit.',
  '',
];
for (const [name, def] of Object.entries(schema.$defs ?? {})) {
  if (def.description) lines.push(`/** ${def.description} */`);
  lines.push(`export type ${name} = ${typeOf(def)};`, '');
}
const eventTypes = schema.properties.event_type.enum;
lines.push(`/** ${schema.properties.event_type.description ?? 'What happened.'} */`);
lines.push(`export type EventType = ${typeOf(schema.properties.event_type)};`, '');
lines.push('/** The parsed body of each event type. */', 'export interface BodyByType {');
for (const t of eventTypes) {
  const rule = (schema.allOf ?? []).find((r) => r.if?.properties?.event_type?.const === t);
  const body = rule?.then?.properties?.body?.contentSchema;
  if (!body) fail(`no contentSchema for the body of ${t}`);
  lines.push(`  ${t}: ${typeOf(body, '  ')};`);
}
lines.push('}', '');
lines.push(`/** ${schema.description} */`, 'export interface WireEvent {');
const required = new Set(schema.required);
for (const [k, v] of Object.entries(schema.properties)) {
  if (v.description) lines.push(`  /** ${v.description} */`);
  lines.push(`  ${k}${required.has(k) ? '' : '?'}: ${k === 'event_type' ? 'EventType' : typeOf(v, '  ')};`);
}
lines.push('}', '');
lines.push(`/** The event types, in the schema's order. */`);
lines.push(`export const EVENT_TYPES: readonly EventType[] = ${JSON.stringify(eventTypes)};`, '');
writeFileSync(out, lines.join('\n'));
