/**
 * Every `@example` in the package's TSDoc compiles. Each ```ts block becomes a
 * module: its imports stay on top, everything from `'raftchart'` it does not
 * import itself is imported for it, and its body runs inside an async
 * function, after a small prelude that declares the names examples take as
 * given (`node`, `network`, `options`, ...). The whole set is type-checked
 * with the project's compiler options, in one program.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = ['index.ts', 'errors.ts', 'machines', 'actors', 'adapters', 'examples'];

/** Names examples may use without declaring them. */
const PRELUDE = `
declare const node: RaftNode<unknown>;
declare const leader: RaftNode<unknown>;
declare const network: MemoryNetwork;
declare const storage: RaftStorage & SnapshotStore;
declare const transport: Transport;
declare const options: RaftNodeOptions<unknown>;
declare const stateMachine: StateMachine<unknown>;
declare const clock: SimulatedClock;
declare const secret: string;
declare const servers: Server[];
declare const bytes: Uint8Array;
declare const key: string;
declare const kv: Map<string, string>;
declare const db: import('abstract-level').AbstractLevel<Uint8Array, Uint8Array, Uint8Array>;
declare const shared: import('abstract-level').AbstractLevel<Uint8Array, Uint8Array, Uint8Array>;
declare const log: LogView;
declare const message: RaftMessage;
declare const request: InstallSnapshotRequest;
declare const input: NodeInput;
declare const outbox: Array<RaftMessage | InstallSnapshotRequest>;
declare const configuration: Configuration;
declare const source: AsyncIterable<Uint8Array>;
declare const expectedSize: number;
declare const term: number;
declare const handler: MessageHandler;
declare const ws: import('ws').WebSocket;
declare const parent: import('xstate').AnyActorRef;
declare const snapshot: SnapshotSendSource;
declare function forwardTo(leaderId: string): void;
declare function retry(): void;
declare const backup: Uint8Array;
declare const committed: LogEntry[];
declare function restoreFrom(restore: CompletedRestore): Promise<void>;
`;

interface Example {
  readonly file: string;
  readonly line: number;
  readonly code: string;
}

function sources(path: string): string[] {
  const full = join(root, path);
  if (statSync(full).isFile()) return [full];
  return readdirSync(full).flatMap((f) => (f.endsWith('.ts') || statSync(join(full, f)).isDirectory() ? sources(join(path, f)) : []));
}

/** The ```ts blocks that follow an `@example` tag in TSDoc comments. */
function examplesOf(file: string): Example[] {
  const text = readFileSync(file, 'utf8');
  const out: Example[] = [];
  for (const m of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const comment = m[0].split('\n').map((l) => l.replace(/^\s*\*( |$)/, '').replace(/^\/\*\*\s?/, '').replace(/\s*\*\/$/, ''));
    let inExample = false;
    let block: string[] | null = null;
    let startLine = 0;
    comment.forEach((line, k) => {
      if (/^@example\b/.test(line)) inExample = true;
      else if (/^@\w+/.test(line)) inExample = false;
      if (!inExample) return;
      if (block === null && /^```(ts|typescript)\s*$/.test(line.trim())) {
        block = [];
        startLine = k;
      } else if (block !== null && line.trim() === '```') {
        const line0 = text.slice(0, m.index).split('\n').length + startLine + 1;
        out.push({ file: relative(root, file), line: line0, code: block.join('\n') });
        block = null;
      } else if (block !== null) block.push(line);
    });
  }
  return out;
}

/** The names a module exports (via the compiler). */
function exportsOf(path: string): string[] {
  const program = ts.createProgram([path], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, noEmit: true });
  const source = program.getSourceFile(path);
  const symbol = source === undefined ? undefined : program.getTypeChecker().getSymbolAtLocation(source);
  return symbol === undefined ? [] : program.getTypeChecker().getExportsOfModule(symbol).map((x) => x.getName());
}

/** Examples under `examples/<name>/` also see what that example's `index.ts` exports. */
function localModule(example: Example): { readonly specifier: string; readonly names: string[] } | null {
  const m = /^examples\/([^/]+)\//.exec(example.file);
  if (m === null) return null;
  const index = join(root, 'examples', m[1] as string, 'index.ts');
  try {
    statSync(index);
  } catch {
    return null;
  }
  return { specifier: `../../../examples/${m[1]}/index.js`, names: exportsOf(index) };
}

/** A module that type-checks one example. */
function moduleFor(example: Example, exported: readonly string[]): string {
  const lines = example.code.split('\n');
  const imports: string[] = [];
  const body: string[] = [];
  let inImport = false;
  for (const l of lines) {
    if (/^\s*import\b/.test(l) || inImport) {
      imports.push(l);
      inImport = !/;\s*$|from\s+['"][^'"]+['"]\s*$/.test(l);
    } else body.push(l);
  }
  const own = new Set<string>();
  for (const m of imports.join('\n').matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s+from\s+['"]raftchart['"]/g)) {
    for (const name of (m[1] as string).split(',')) {
      const local = name.trim().replace(/^type\s+/, '').split(/\s+as\s+/).at(-1)?.trim();
      if (local !== undefined && local !== '') own.add(local);
    }
  }
  const local = localModule(example);
  const localNames = (local?.names ?? []).filter((n) => !own.has(n) && !exported.includes(n));
  const auto = exported.filter((n) => !own.has(n));
  return [
    ...imports,
    `import { ${auto.join(', ')} } from 'raftchart';`,
    ...(local === null || localNames.length === 0 ? [] : [`import { ${localNames.join(', ')} } from '${local.specifier}';`]),
    PRELUDE,
    'export async function example(): Promise<void> {',
    ...body,
    '}',
  ].join('\n');
}

t.test('every @example in the TSDoc compiles', async (t) => {
  const examples = SOURCES.flatMap(sources).flatMap(examplesOf);
  t.ok(examples.length >= 30, `found ${examples.length} examples`);

  const exported = exportsOf(join(root, 'index.ts'));
  t.ok(exported.includes('createRaftNode'), `the package root exports ${exported.length} names`);

  const files = new Map<string, string>();
  examples.forEach((e, i) => files.set(join(root, 'spec/site/.examples', `example-${i}.ts`), moduleFor(e, exported)));
  const configPath = join(root, 'tsconfig.json');
  const config = ts.parseJsonConfigFileContent(ts.readConfigFile(configPath, ts.sys.readFile).config, ts.sys, root);
  const compilerOptions: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    noUnusedLocals: false,
    verbatimModuleSyntax: false,
    isolatedModules: false,
    noUnusedParameters: false,
    paths: { raftchart: ['./index.ts'] },
    baseUrl: root,
  };
  const host = ts.createCompilerHost(compilerOptions);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => files.get(f) ?? readFile(f);
  host.fileExists = (f) => files.has(f) || fileExists(f);
  host.getSourceFile = (f, v, onError, create) => {
    const text = files.get(f);
    return text === undefined ? getSourceFile(f, v, onError, create) : ts.createSourceFile(f, text, v);
  };
  const program = ts.createProgram([...files.keys()], compilerOptions, host);
  const problems = new Map<number, string[]>();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const f = d.file?.fileName ?? '';
    const m = /example-(\d+)\.ts$/.exec(f);
    if (m === null) continue;
    const i = Number(m[1]);
    const list = problems.get(i) ?? [];
    list.push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    problems.set(i, list);
  }
  examples.forEach((e, i) => {
    t.same(problems.get(i) ?? [], [], `${e.file}:${e.line} compiles`);
  });
});
