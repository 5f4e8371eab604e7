// Raw IPv4/IPv6 packets carrying one UDP datagram, for sending with an IPPROTO_RAW socket:
// the layout of the IP and UDP headers and the UDP checksum over the pseudo-header.
import { IPPROTO_UDP } from './sockets.js';

function checksum(parts: Buffer[]): number {
  let sum = 0;
  for (const b of parts) {
    for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return (~sum & 0xffff) || 0xffff;
}

/** An IP packet carrying `data` in UDP from `src` to `dst` (addresses of one family, raw bytes). */
export function udpPacket(src: Buffer, sport: number, dst: Buffer, dport: number, data: Buffer): Buffer {
  const udp = Buffer.alloc(8 + data.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  data.copy(udp, 8);
  if (src.length === 4) {
    const ip = Buffer.alloc(20);
    ip.writeUInt8(0x45, 0);
    ip.writeUInt16BE(20 + udp.length, 2);
    ip.writeUInt8(64, 8);
    ip.writeUInt8(IPPROTO_UDP, 9);
    src.copy(ip, 12);
    dst.copy(ip, 16);
    const pseudo = Buffer.alloc(12);
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo.writeUInt8(IPPROTO_UDP, 9);
    pseudo.writeUInt16BE(udp.length, 10);
    udp.writeUInt16BE(checksum([pseudo, udp]), 6);
    return Buffer.concat([ip, udp]); // the kernel fills in the header checksum and id
  }
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(6 << 28, 0);
  ip.writeUInt16BE(udp.length, 4);
  ip.writeUInt8(IPPROTO_UDP, 6);
  ip.writeUInt8(64, 7);
  src.copy(ip, 8);
  dst.copy(ip, 24);
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(udp.length, 32);
  pseudo.writeUInt8(IPPROTO_UDP, 39);
  udp.writeUInt16BE(checksum([pseudo, udp.length % 2 ? Buffer.concat([udp, Buffer.alloc(1)]) : udp]), 6);
  return Buffer.concat([ip, udp]);
}
