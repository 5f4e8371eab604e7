import t from 'tap';
import { hex, parseHex } from '../../src/image/index.js';

t.test('hex writes 0x and lowercase digits', async (t) => {
  t.equal(hex(0), '0x0');
  t.equal(hex(255), '0xff');
  t.equal(hex(0x7ffd12345000n), '0x7ffd12345000');
  t.equal(hex(0xffffffffffffffffn), '0xffffffffffffffff');
  t.equal(hex(BigInt.asUintN(64, -1n)), '0xffffffffffffffff');
});

t.test('hex refuses what it cannot write exactly', async (t) => {
  t.throws(() => hex(-1n), { name: 'RangeError', message: 'hex: -1 is negative; pass BigInt.asUintN(64, value)' });
  t.throws(() => hex(2 ** 60), { name: 'RangeError', message: 'hex: 1152921504606847000 is not a safe integer; pass a bigint' });
  t.throws(() => hex(1.5), RangeError);
});

t.test('parseHex is the inverse of hex', async (t) => {
  for (const v of [0n, 1n, 0xdeadbeefn, 0x7ffd12345000n, (1n << 64n) - 1n]) t.equal(parseHex(hex(v)), v);
  t.equal(parseHex('0xDEADbeef'), 0xdeadbeefn);
});

t.test('parseHex wants 0x and hex digits only', async (t) => {
  for (const bad of ['', '0x', 'ff', '0xfg', ' 0x1', '0x1 ', '-0x1', '0b101']) {
    t.throws(() => parseHex(bad), { name: 'TypeError', message: `parseHex: ${JSON.stringify(bad)} is not a 0x-prefixed hex number` }, bad);
  }
});
