import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The wire format between replicas, as pure functions (the TCP shell and the tests share them).
 *
 * Every frame is a 4-byte big-endian body length, then the body; the body's first byte is its kind.
 *   HELLO  kind, nonce (32 bytes), node id (utf8)
 *   PROOF  kind, HMAC-SHA256(secret, "proof", role, dialer nonce, acceptor nonce, dialer id, acceptor id)
 *   DATA   kind, seq (u64), HMAC-SHA256(session key, seq, payload) (32 bytes), payload
 * The role ("dialer" / "acceptor") is in the proof so one side's proof can never be replayed as the other's.
 * The session key is HMAC(secret, "session", both nonces, both ids): fresh per connection, so a frame
 * captured from one connection fails the MAC on any other; the seq must grow, so none is replayed within one.
 */

export const FRAME_HEADER_BYTES = 4;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
const SEQ_BYTES = 8;
/** LEDGER_NODE_ID is at most 50 characters; a longer id in a HELLO is refused before it reaches a log line. */
export const NODE_ID_BYTES_MAX = 64;
export const DATA_OVERHEAD_BYTES = 1 + SEQ_BYTES + MAC_BYTES;

export enum FrameKind {
  Hello = 1,
  Proof = 2,
  Data = 3,
}

export type Role = 'dialer' | 'acceptor';

/** What both sides of one connection agree on after exchanging HELLOs. */
export interface HandshakeTranscript {
  dialerId: string;
  acceptorId: string;
  dialerNonce: Buffer;
  acceptorNonce: Buffer;
}

export class FrameTooLargeError extends Error {
  constructor(readonly lengthBytes: number, readonly maxFrameBytes: number) {
    super(`frame of ${lengthBytes} bytes exceeds the maximum of ${maxFrameBytes}`);
    this.name = 'FrameTooLargeError';
  }
}

export function encodeFrame(body: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/**
 * Splits a byte stream into frame bodies. The length is checked from the header, before any of the body
 * is buffered, so a peer cannot make us hold more than maxFrameBytes + one chunk.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Returns the complete bodies in this chunk; throws FrameTooLargeError on an oversized header. */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const bodies: Buffer[] = [];
    while (this.pendingBytes >= FRAME_HEADER_BYTES) {
      const buffered = this.coalesce();
      const length = buffered.readUInt32BE(0);
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
      if (buffered.length < FRAME_HEADER_BYTES + length) break;
      bodies.push(buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length));
      this.replacePending(buffered.subarray(FRAME_HEADER_BYTES + length));
    }
    return bodies;
  }

  private coalesce(): Buffer {
    const buffered = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [buffered];
    return buffered;
  }

  private replacePending(rest: Buffer): void {
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
  }
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function encodeHello(nonce: Buffer, nodeId: string): Buffer {
  return Buffer.concat([Buffer.from([FrameKind.Hello]), nonce, Buffer.from(nodeId, 'utf8')]);
}

/** Null when the body is not a well-formed HELLO. */
export function decodeHello(body: Buffer): { nonce: Buffer; nodeId: string } | null {
  if (body[0] !== FrameKind.Hello || body.length <= 1 + NONCE_BYTES || body.length > 1 + NONCE_BYTES + NODE_ID_BYTES_MAX) return null;
  return { nonce: Buffer.from(body.subarray(1, 1 + NONCE_BYTES)), nodeId: body.subarray(1 + NONCE_BYTES).toString('utf8') };
}

/** Each field is length-prefixed so no two different transcripts hash the same bytes. */
function transcriptBytes(label: string, t: HandshakeTranscript): Buffer {
  const fields = [Buffer.from(label), t.dialerNonce, t.acceptorNonce, Buffer.from(t.dialerId, 'utf8'), Buffer.from(t.acceptorId, 'utf8')];
  return Buffer.concat(fields.flatMap((field) => [u32(field.length), field]));
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value, 0);
  return b;
}

function hmac(key: Buffer | string, ...parts: Buffer[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

export function handshakeProof(secret: string, role: Role, t: HandshakeTranscript): Buffer {
  return hmac(secret, transcriptBytes(`proof:${role}`, t));
}

export function encodeProof(proof: Buffer): Buffer {
  return Buffer.concat([Buffer.from([FrameKind.Proof]), proof]);
}

/** Constant-time check of a PROOF body against the proof the given role should have sent. */
export function verifyProof(body: Buffer, secret: string, role: Role, t: HandshakeTranscript): boolean {
  if (body[0] !== FrameKind.Proof || body.length !== 1 + MAC_BYTES) return false;
  return timingSafeEqual(body.subarray(1), handshakeProof(secret, role, t));
}

export function sessionKey(secret: string, t: HandshakeTranscript): Buffer {
  return hmac(secret, transcriptBytes('session', t));
}

function seqBytes(seq: bigint): Buffer {
  const b = Buffer.alloc(SEQ_BYTES);
  b.writeBigUInt64BE(seq, 0);
  return b;
}

export function encodeData(key: Buffer, seq: bigint, payload: Buffer): Buffer {
  const seqField = seqBytes(seq);
  return Buffer.concat([Buffer.from([FrameKind.Data]), seqField, hmac(key, seqField, payload), payload]);
}

export type DataCheck = { ok: true; seq: bigint; payload: Buffer } | { ok: false; reason: 'malformed' | 'bad-mac' | 'stale-seq' };

/** Accepts a DATA body only with a valid MAC and a seq above the last one accepted on this connection. */
export function checkData(body: Buffer, key: Buffer, lastSeq: bigint): DataCheck {
  if (body[0] !== FrameKind.Data || body.length < DATA_OVERHEAD_BYTES) return { ok: false, reason: 'malformed' };
  const seqField = body.subarray(1, 1 + SEQ_BYTES);
  const mac = body.subarray(1 + SEQ_BYTES, DATA_OVERHEAD_BYTES);
  const payload = body.subarray(DATA_OVERHEAD_BYTES);
  if (!timingSafeEqual(mac, hmac(key, seqField, payload))) return { ok: false, reason: 'bad-mac' };
  const seq = seqField.readBigUInt64BE(0);
  if (seq <= lastSeq) return { ok: false, reason: 'stale-seq' };
  return { ok: true, seq, payload: Buffer.from(payload) };
}
