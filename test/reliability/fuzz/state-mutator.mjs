// Seeded mutations of a real tea-llama state file (binding/core/state_file.h) for the state fuzzer
// (run-state-fuzz.mjs): truncations at every section boundary and at random, random byte changes without and with
// the checksum made valid again (so that llama.cpp's parse behind a valid header is reached), header fields and
// llama.cpp's cell table set to edge values, bytes appended or cut. Case i of seed s is always the same.

const HEADER = 48; // magic 8, version 4, flags 4, fingerprint 8, nTokens 4, metaBytes 4, payloadBytes 8, checksum 8
const CHECKSUM_AT = 40;
const MASK = (1n << 64n) - 1n;

/** FNV-1a 64, as state_file.cpp. */
function fnv(bytes, hash = 0xcbf29ce484222325n) {
  for (const b of bytes) hash = ((hash ^ BigInt(b)) * 0x100000001b3n) & MASK;
  return hash;
}

/** Makes the checksum of `buf` valid again (in place). */
export function fixChecksum(buf) {
  let sum = fnv(buf.subarray(0, CHECKSUM_AT));
  sum = fnv(buf.subarray(HEADER), sum);
  buf.writeBigUInt64LE(sum, CHECKSUM_AT);
  return buf;
}

class Random {
  constructor(seed) {
    this.s = seed >>> 0 || 1;
  }
  next() {
    let x = this.s; // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 4294967296;
  }
  int(n) {
    return Math.floor(this.next() * n);
  }
  pick(list) {
    return list[this.int(list.length)];
  }
}

const EDGE32 = [0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 1 << 20, 255, 256];

export class StateFuzzer {
  constructor(seed, base) {
    this.seed = seed;
    this.base = base;
    this.nTokens = base.readUInt32LE(24);
    this.metaBytes = base.readUInt32LE(28);
    this.payloadAt = HEADER + 4 * this.nTokens + this.metaBytes;
    // llama.cpp's part: magic 4, seq 4, n_stream 4, cell_count 4, cells (pos, n_seq_id, seq_id) 12 each, then rows
    this.rowsAt = this.payloadAt + 16 + 12 * this.nTokens;
    this.boundaries = [0, 8, 12, 16, 24, 28, 32, 40, HEADER, HEADER + 4 * this.nTokens, this.payloadAt, this.payloadAt + 16, this.rowsAt, this.rowsAt + 8, this.rowsAt + 12, base.length - 1];
  }

  get systematic() {
    return this.boundaries.length;
  }

  /** { kind, description, buffer } */
  case(i) {
    const base = this.base;
    if (i < this.boundaries.length) {
      const at = this.boundaries[i];
      return { kind: 'truncate-boundary', description: `truncated at ${at}`, buffer: Buffer.from(base.subarray(0, at)) };
    }
    const r = new Random((this.seed * 2654435761 + i * 40503) >>> 0);
    r.next();
    const buf = Buffer.from(base);
    const kind = r.pick(['truncate', 'flip', 'flip-valid', 'header-field', 'cell-table', 'rows', 'append', 'cut-payload', 'tokens']);
    switch (kind) {
      case 'truncate': {
        const at = r.int(base.length);
        return { kind, description: `truncated at ${at}`, buffer: buf.subarray(0, at) };
      }
      case 'flip': {
        const n = 1 + r.int(8);
        for (let k = 0; k < n; k++) buf[r.int(buf.length)] ^= 1 << r.int(8);
        return { kind, description: `${n} bits flipped`, buffer: buf };
      }
      case 'flip-valid': {
        const n = 1 + r.int(16);
        for (let k = 0; k < n; k++) buf[this.payloadAt + r.int(buf.length - this.payloadAt)] = r.int(256);
        return { kind, description: `${n} payload bytes changed, checksum fixed`, buffer: fixChecksum(buf) };
      }
      case 'header-field': {
        const field = r.pick([8, 12, 16, 20, 24, 28, 32, 36]);
        const value = r.pick(EDGE32);
        buf.writeUInt32LE(value >>> 0, field);
        return { kind, description: `header u32 at ${field} = ${value}, checksum fixed`, buffer: r.next() < 0.8 ? fixChecksum(buf) : buf };
      }
      case 'cell-table': {
        const offsets = [this.payloadAt, this.payloadAt + 4, this.payloadAt + 8, this.payloadAt + 12];
        for (let c = 0; c < Math.min(this.nTokens, 64); c++) offsets.push(this.payloadAt + 16 + 12 * c, this.payloadAt + 20 + 12 * c, this.payloadAt + 24 + 12 * c);
        const at = r.pick(offsets);
        const value = r.next() < 0.5 ? r.pick(EDGE32) : r.int(this.nTokens + 4);
        buf.writeUInt32LE(value >>> 0, at);
        return { kind, description: `cell table u32 at ${at - this.payloadAt} = ${value}, checksum fixed`, buffer: fixChecksum(buf) };
      }
      case 'rows': {
        // v_trans, n_layer, then per layer a type (i32) and a row size (u64) before the rows
        const at = this.rowsAt + r.pick([0, 4, 8, 12, 16, 20]);
        buf.writeUInt32LE(r.pick(EDGE32) >>> 0, at);
        return { kind, description: `row header u32 at ${at - this.rowsAt} after the cell table, checksum fixed`, buffer: fixChecksum(buf) };
      }
      case 'append': {
        const extra = Buffer.alloc(1 + r.int(64), r.int(256));
        const out = Buffer.concat([buf, extra]);
        if (r.next() < 0.5) out.writeBigUInt64LE(out.readBigUInt64LE(32) + BigInt(extra.length), 32);
        return { kind, description: `${extra.length} bytes appended, checksum fixed`, buffer: fixChecksum(out) };
      }
      case 'cut-payload': {
        const cut = 1 + r.int(Math.max(1, buf.length - this.payloadAt - 1));
        const out = Buffer.from(buf.subarray(0, buf.length - cut));
        out.writeBigUInt64LE(out.readBigUInt64LE(32) - BigInt(cut), 32);
        return { kind, description: `payload cut by ${cut} with the header agreeing, checksum fixed`, buffer: fixChecksum(out) };
      }
      default: {
        const at = HEADER + 4 * r.int(this.nTokens);
        buf.writeInt32LE(r.pick([-1, 0, 1, 511, 512, 0x7fffffff, 3]), at);
        return { kind, description: `token ${(at - HEADER) / 4} changed, checksum fixed`, buffer: fixChecksum(buf) };
      }
    }
  }
}
