/**
 * Hex text for 64-bit quantities (addresses, register values): JSON numbers lose
 * precision above 2^53, so images store them as "0x" + lowercase hex digits.
 */

const HEX = /^0x[0-9a-fA-F]+$/;

/** "0x" + lowercase hex. Negative values are refused: pass BigInt.asUintN(64, v) for a register's bit pattern. */
export function hex(value: bigint | number): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`hex: ${value} is not a safe integer; pass a bigint`);
    value = BigInt(value);
  }
  if (value < 0n) throw new RangeError(`hex: ${value} is negative; pass BigInt.asUintN(64, value)`);
  return '0x' + value.toString(16);
}

/** Inverse of hex(); accepts either letter case, requires the "0x" prefix. */
export function parseHex(text: string): bigint {
  if (typeof text !== 'string' || !HEX.test(text)) throw new TypeError(`parseHex: ${JSON.stringify(text)} is not a 0x-prefixed hex number`);
  return BigInt(text);
}
