import t from 'tap';
import { ExpressionSyntaxError, evaluateExpression, parseExpression } from '../../src/runner/expression.js';

const vars: Record<string, string> = { a: '3', b: '3.0', word: 'x == y', empty: '' };
const substitute = (text: string): string => text.replace(/\$\{(\w+)\}/g, (_, name: string) => vars[name] ?? '');
const evaluate = (source: string) => evaluateExpression(parseExpression(source), substitute);

t.test('== and != compare numbers as numbers, other values as strings', async (t) => {
  t.same(evaluate('${a} == 3'), { value: true, shown: '"3" == "3"' });
  t.equal(evaluate('${a} == ${b}').value, true);
  t.equal(evaluate('${a} != ${b}').value, false);
  t.equal(evaluate("'abc' == abc").value, true);
  t.equal(evaluate('"a b" != "a  b"').value, true);
  t.equal(evaluate('${a}==3').value, true, 'operators need no spaces');
});

t.test('a substituted value stays one operand', async (t) => {
  t.same(evaluate("'${word}' == 'x == y'"), { value: true, shown: '"x == y" == "x == y"' });
  t.equal(evaluate('${word} == x').value, false);
});

t.test('a lone operand is true unless empty, false or 0', async (t) => {
  t.equal(evaluate('${a}').value, true);
  t.equal(evaluate("'${empty}'").value, false);
  t.equal(evaluate('false').value, false);
  t.equal(evaluate('0').value, false);
});

t.test('syntax errors say what is wrong', async (t) => {
  const cases: Array<[string, string]> = [
    ['', 'empty expression'],
    ['== 1', `missing operand before '==' in expression "== 1"`],
    ['a ==', `missing operand after '==' in expression "a =="`],
    ['a = b', `expected '==' or '!=' after 'a', got '=' in expression "a = b"`],
    ['a == b c', `unexpected 'c' in expression "a == b c"`],
    ["'a == b", `unterminated ' quote in expression "'a == b"`],
  ];
  for (const [source, message] of cases) t.throws(() => parseExpression(source), new ExpressionSyntaxError(message), source);
});
