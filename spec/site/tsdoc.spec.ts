/**
 * TSDoc completeness of the package's exports (everything `index.ts` exports).
 *
 * Asserted: every exported symbol has a non-empty TSDoc summary, and every
 * exported function, class and public class member whose own body contains
 * `throw` or `Promise.reject` has a `@throws` tag (an approximation read from
 * the source text: throws in called helpers are not seen; deterministic for a
 * given tree). Reported only (as a comment, with the missing names): which
 * exported functions and classes lack an `@example`.
 */
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../', import.meta.url));
const entry = join(root, 'index.ts');

const program = ts.createProgram([entry], {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  skipLibCheck: true,
  noEmit: true,
});
const checker = program.getTypeChecker();

interface Exported {
  readonly name: string;
  readonly symbol: ts.Symbol;
  readonly declarations: readonly ts.Declaration[];
}

function exported(): Exported[] {
  const source = program.getSourceFile(entry);
  const moduleSymbol = source === undefined ? undefined : checker.getSymbolAtLocation(source);
  if (moduleSymbol === undefined) return [];
  return checker
    .getExportsOfModule(moduleSymbol)
    .map((s) => {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
      return { name: s.getName(), symbol: target, declarations: target.getDeclarations() ?? [] };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function where(d: ts.Node): string {
  const f = d.getSourceFile();
  return `${relative(root, f.fileName)}:${f.getLineAndCharacterOfPosition(d.getStart()).line + 1}`;
}

/** The node whose JSDoc documents a declaration (a `const` documents through its statement). */
function documented(d: ts.Node): ts.Node {
  if (ts.isVariableDeclaration(d) && ts.isVariableDeclarationList(d.parent)) return d.parent.parent;
  return d;
}

function tagsOf(d: ts.Node): string[] {
  return ts.getJSDocTags(d).map((tag) => tag.tagName.text);
}

/** Tags of a declaration and, for overloads and merged declarations, its siblings. */
function tagsOfAll(decls: readonly ts.Node[]): Set<string> {
  return new Set(decls.flatMap((d) => tagsOf(documented(d))));
}

/** The body a declaration runs (a function, a method, a constructor, an initialiser arrow). */
function bodyOf(d: ts.Node): ts.Node | undefined {
  if (ts.isFunctionDeclaration(d) || ts.isMethodDeclaration(d) || ts.isConstructorDeclaration(d) || ts.isGetAccessorDeclaration(d) || ts.isSetAccessorDeclaration(d)) return d.body;
  if (ts.isVariableDeclaration(d) || ts.isPropertyDeclaration(d)) {
    const init = d.initializer;
    if (init !== undefined && (ts.isArrowFunction(init) || ts.isFunctionExpression(init))) return init.body;
  }
  return undefined;
}

function canThrow(body: ts.Node | undefined): boolean {
  if (body === undefined) return false;
  const text = body.getText();
  return /\bthrow\b/.test(text.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')) || /Promise\.reject\(/.test(text);
}

function isPublicMember(m: ts.ClassElement): boolean {
  if (m.name !== undefined && ts.isPrivateIdentifier(m.name)) return false;
  const mods = ts.canHaveModifiers(m) ? (ts.getModifiers(m) ?? []) : [];
  return !mods.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword || x.kind === ts.SyntaxKind.ProtectedKeyword);
}

interface Throwing {
  readonly label: string;
  readonly node: ts.Node;
  readonly tags: Set<string>;
}

/** Exported functions, classes and public class members whose own body throws. */
function throwing(all: readonly Exported[]): Throwing[] {
  const out: Throwing[] = [];
  for (const e of all) {
    for (const d of e.declarations) {
      if (canThrow(bodyOf(d))) out.push({ label: e.name, node: d, tags: tagsOfAll(e.declarations) });
      if (ts.isClassDeclaration(d)) {
        for (const m of d.members) {
          if (!isPublicMember(m)) continue;
          const name = ts.isConstructorDeclaration(m) ? 'constructor' : (m.name?.getText() ?? '?');
          if (canThrow(bodyOf(m))) out.push({ label: `${e.name}.${name}`, node: m, tags: new Set(tagsOf(m)) });
        }
      }
    }
  }
  return out;
}

const all = exported();

t.test('every export of index.ts has a TSDoc summary', async (t) => {
  t.ok(all.length >= 100, `index.ts exports ${all.length} names`);
  const missing = all.filter((e) => e.symbol.getDocumentationComment(checker).map((p) => p.text).join('').trim() === '');
  t.same(
    missing.map((e) => `${e.name} (${e.declarations[0] === undefined ? '?' : where(e.declarations[0])})`),
    [],
    'exports without a summary',
  );
});

t.test('every exported function, class and member that throws has @throws', async (t) => {
  const throws = throwing(all);
  t.ok(throws.length >= 20, `the heuristic finds ${throws.length} throwing functions, classes and members`);
  t.same(
    throws.filter((x) => !x.tags.has('throws')).map((x) => `${x.label} (${where(x.node)})`),
    [],
    'throwing exports without @throws',
  );
});

t.test('@example coverage (reported, not asserted)', async (t) => {

  const callables = all.filter((e) => e.declarations.some((d) => ts.isFunctionDeclaration(d) || ts.isClassDeclaration(d)));
  const noExample = callables.filter((e) => !tagsOfAll(e.declarations).has('example'));
  t.comment(`@example: ${callables.length - noExample.length}/${callables.length} exported functions and classes have one`);
  for (const e of noExample) t.comment(`  no @example: ${e.name}`);
  t.ok(callables.length > 0, 'the package exports functions and classes');
});
