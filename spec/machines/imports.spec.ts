/**
 * Layout rule of DESIGN.md: `machines/` is pure — it imports nothing but
 * xstate and other files of `machines/`. Checked on the source text, so a new
 * import of a Node module, an adapter or an actor fails here.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const dir = fileURLToPath(new URL('../../machines/', import.meta.url));
const IMPORT = /\b(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

/** Every module specifier a TypeScript source imports or re-exports. */
function specifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT)) out.push((m[1] ?? m[2] ?? m[3]) as string);
  return out;
}

const allowed = (spec: string): boolean => spec === 'xstate' || /^\.\/[\w.-]+\.js$/.test(spec);

t.test('the import scanner finds every form of import it must police', async (t) => {
  const src = [
    "import { a } from 'xstate';",
    "import type { B } from './types.js';",
    "export { c } from '../actors/log.js';",
    "import 'node:fs';",
    "const m = await import('rxjs');",
    "import {\n  d,\n  e,\n} from 'node:crypto';",
  ].join('\n');
  t.same(specifiers(src), ['xstate', './types.js', '../actors/log.js', 'node:fs', 'rxjs', 'node:crypto']);
  t.same(specifiers(src).filter((s) => !allowed(s)), ['../actors/log.js', 'node:fs', 'rxjs', 'node:crypto']);
});

t.test('machines/ imports nothing but xstate and machines/*', async (t) => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  t.ok(files.length >= 5, `found ${files.length} machine sources`);
  for (const f of files) {
    const bad = specifiers(readFileSync(join(dir, f), 'utf8')).filter((s) => !allowed(s));
    t.same(bad, [], `${f} imports only xstate and machines/*`);
  }
});
