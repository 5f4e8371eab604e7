// The expression language of `if:` and `assert: { that: }`, deliberately tiny:
//
//   expression := operand [ ('==' | '!=') operand ]
//   operand    := 'single quoted' | "double quoted" | bare-word
//
// Operands may contain ${...} references. The expression is parsed before references are
// substituted, so a substituted value is always one whole operand, whatever it contains.
// Two operands that both read as decimal numbers compare as numbers ("1.0" == "1"), others as
// strings. A lone operand is true unless it is "", "false" or "0".

import type { Evaluation } from './types.js';

export interface Operand {
  /** As written, with quotes. */
  raw: string;
  /** Without quotes; references not yet substituted. */
  value: string;
}

export interface Expression {
  source: string;
  left: Operand;
  op?: '==' | '!=';
  right?: Operand;
}

export class ExpressionSyntaxError extends Error {}

type Token = { kind: 'op'; text: '==' | '!=' } | { kind: 'operand'; operand: Operand };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (source.startsWith('==', i) || source.startsWith('!=', i)) {
      tokens.push({ kind: 'op', text: source.slice(i, i + 2) as '==' | '!=' });
      i += 2;
    } else if (c === '"' || c === "'") {
      const end = source.indexOf(c, i + 1);
      if (end < 0) throw new ExpressionSyntaxError(`unterminated ${c} quote in expression "${source}"`);
      tokens.push({ kind: 'operand', operand: { raw: source.slice(i, end + 1), value: source.slice(i + 1, end) } });
      i = end + 1;
    } else {
      let end = i;
      while (end < source.length && !/\s/.test(source[end]!) && !source.startsWith('==', end) && !source.startsWith('!=', end)) {
        end++;
      }
      const word = source.slice(i, end);
      tokens.push({ kind: 'operand', operand: { raw: word, value: word } });
      i = end;
    }
  }
  return tokens;
}

function shownToken(token: Token): string {
  return token.kind === 'op' ? token.text : token.operand.raw;
}

export function parseExpression(source: string): Expression {
  const tokens = tokenize(source);
  const [first, second, third, extra] = tokens;
  if (!first) throw new ExpressionSyntaxError('empty expression');
  if (first.kind !== 'operand') throw new ExpressionSyntaxError(`missing operand before '${first.text}' in expression "${source}"`);
  if (!second) return { source, left: first.operand };
  if (second.kind !== 'op') {
    throw new ExpressionSyntaxError(
      `expected '==' or '!=' after '${first.operand.raw}', got '${second.operand.raw}' in expression "${source}"`,
    );
  }
  if (!third || third.kind !== 'operand') {
    throw new ExpressionSyntaxError(`missing operand after '${second.text}' in expression "${source}"`);
  }
  if (extra) throw new ExpressionSyntaxError(`unexpected '${shownToken(extra)}' in expression "${source}"`);
  return { source, left: first.operand, op: second.text, right: third.operand };
}

const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)$/;

function equal(a: string, b: string): boolean {
  return DECIMAL.test(a) && DECIMAL.test(b) ? Number(a) === Number(b) : a === b;
}

/** `substitute` turns an operand's text into its value (references replaced). */
export function evaluateExpression(expression: Expression, substitute: (text: string) => string): Evaluation {
  const left = substitute(expression.left.value);
  if (!expression.op || !expression.right) {
    return { value: !['', 'false', '0'].includes(left), shown: JSON.stringify(left) };
  }
  const right = substitute(expression.right.value);
  const same = equal(left, right);
  return {
    value: expression.op === '==' ? same : !same,
    shown: `${JSON.stringify(left)} ${expression.op} ${JSON.stringify(right)}`,
  };
}
