// A pipeline's data together with where each part of it was written, so that every problem
// can be reported as FILE:LINE:COL. Documents built in code (plain commands) have no positions.
import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { Problem } from './errors.js';

export type Path = ReadonlyArray<string | number>;

export interface Position {
  line: number;
  col: number;
}

export interface PipelineSource {
  file?: string;
  data: unknown;
  /** Problems found while reading it (YAML syntax, duplicate keys). */
  problems: Problem[];
  /** Where the value at `path` starts, or its key with which = 'key'. */
  locate(path: Path, which?: 'key' | 'value'): Position | undefined;
  /** Where `text`, found at `offset` in the string value at `path`, was written. */
  locateInString(path: Path, offset: number, text: string): Position | undefined;
}

export function sourceFromObject(data: unknown, file?: string): PipelineSource {
  return { file, data, problems: [], locate: () => undefined, locateInString: () => undefined };
}

export async function readPipelineFile(file: string): Promise<PipelineSource> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    return { ...sourceFromObject(undefined, file), problems: [{ file, message: `cannot read pipeline file: ${reason}` }] };
  }
  return parsePipelineText(text, file);
}

export function parsePipelineText(text: string, file?: string): PipelineSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): Position => lines.linePos(offset);

  const problems: Problem[] = [];
  for (const error of [...doc.errors, ...doc.warnings]) {
    const message =
      error.code === 'DUPLICATE_KEY' ? `duplicate key '${keyStartingAt(doc, error.pos[0]) ?? '?'}'` : `invalid YAML: ${error.message}`;
    problems.push({ file, ...at(error.pos[0]), message });
  }
  // Duplicate keys leave a usable tree, so schema problems are reported alongside them;
  // after a syntax error the tree is not worth validating.
  const usable = doc.errors.every((error) => error.code === 'DUPLICATE_KEY');

  const nodeAt = (path: Path): { node: Node | null; key?: Node } | undefined => {
    let node: unknown = doc.contents;
    let key: Node | undefined;
    for (const part of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
        if (!pair) return undefined;
        key = pair.key as Node;
        node = pair.value;
      } else if (isSeq(node) && typeof part === 'number') {
        node = node.items[part];
        key = undefined;
        if (node === undefined) return undefined;
      } else {
        return undefined;
      }
    }
    return { node: (node ?? null) as Node | null, key };
  };

  return {
    file,
    data: usable ? doc.toJS({ maxAliasCount: 1000 }) : undefined,
    problems,
    locate(path, which = 'value') {
      const found = nodeAt(path);
      if (!found) return undefined;
      const node = which === 'key' && found.key ? found.key : (found.node ?? found.key);
      return node?.range ? at(node.range[0]) : at(0);
    },
    locateInString(path, offset, piece) {
      const found = nodeAt(path);
      const node = found?.node;
      if (!isScalar(node) || typeof node.value !== 'string' || !node.range) return undefined;
      // Count which occurrence of `piece` the offset is, then find that occurrence in the raw
      // source (references contain nothing that quoting or escaping would change).
      const value = node.value;
      let nth = 0;
      for (let i = value.indexOf(piece); i >= 0 && i < offset; i = value.indexOf(piece, i + 1)) nth++;
      const raw = text.slice(node.range[0], node.range[1]);
      let index = raw.indexOf(piece);
      for (let n = 0; n < nth && index >= 0; n++) index = raw.indexOf(piece, index + 1);
      return at(node.range[0] + Math.max(index, 0));
    },
  };
}

function keyStartingAt(doc: Document, offset: number): string | undefined {
  let found: string | undefined;
  visit(doc, {
    Pair(_, pair) {
      if (isPair(pair) && isScalar(pair.key) && pair.key.range?.[0] === offset) {
        found = String(pair.key.value);
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}
