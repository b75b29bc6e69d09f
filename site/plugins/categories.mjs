// @ts-check
/**
 * TypeDoc plugin: groups the API reference by the folder an export comes from
 * — Machines, Actors, Adapters, Errors — without a `@category` tag on every
 * declaration. An explicit `@category` tag wins.
 */
import { Comment, CommentTag, Converter, ReflectionKind } from 'typedoc';

/** @type {Array<[RegExp, string]>} */
const FOLDERS = [
  [/(^|\/)machines\//, 'Machines'],
  [/(^|\/)actors\//, 'Actors'],
  [/(^|\/)adapters\//, 'Adapters'],
  [/(^|\/)errors\.ts$/, 'Errors'],
];

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const project = context.project;
    /** @param {import('typedoc').ContainerReflection} container */
    const visit = (container) => {
      for (const reflection of container.children ?? []) {
        if (reflection.kindOf(ReflectionKind.Module | ReflectionKind.Project)) {
          visit(reflection);
          continue;
        }
        const path = project.getSymbolIdFromReflection(reflection)?.packagePath ?? '';
        const category = FOLDERS.find(([re]) => re.test(path))?.[1];
        if (category === undefined) continue;
        const comment = (reflection.comment ??= new Comment());
        if (comment.blockTags.some((t) => t.tag === '@category')) continue;
        comment.blockTags.push(new CommentTag('@category', [{ kind: 'text', text: category }]));
      }
    };
    visit(project);
  });
}
