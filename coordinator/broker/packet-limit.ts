/**
 * A maximum MQTT packet size enforced as the socket is read. Aedes parses with mqtt-packet, which has
 * no size limit: it buffers a packet's whole body, however large the length its fixed header declares,
 * before anything (authentication included) looks at it — five sockets declaring 200 MB CONNECTs cost
 * the coordinator a gigabyte. The limit hooks the parser's remaining-length step, so a packet that
 * declares too much is refused from its first few bytes and the connection closed before its body is
 * buffered. Until the client has authenticated the limit is the (much smaller) CONNECT limit.
 * I/O shell (patches one Aedes client's parser instance).
 */
import { FleetError } from '@fleet/protocol/errors';

/**
 * A CONNECT carries a client id, user name and secret (each ≤ 64 characters) and the presence will:
 * well under a kilobyte. Anything declaring more before authentication is refused.
 */
export const CONNECT_PACKET_LIMIT = 8 * 1024;

/** The parts of mqtt-packet's Parser this hook relies on (mqtt-packet 9, as Aedes 1.x uses it). */
interface ParserInternals {
  packet: { cmd?: string; length: number };
  _parseLength: (this: ParserInternals) => boolean;
  _emitError: (this: ParserInternals, err: Error) => void;
}

export interface PacketLimitHooks {
  /** The limit for this client's next packet (it may change once the client authenticates). */
  limitFor(): number;
  /** Called once when a packet is refused; the connection is then closed by Aedes. */
  onOversize(declared: number, limit: number, cmd: string | undefined): void;
}

/** Refused: a packet declared more bytes than allowed. */
export class PacketTooLargeError extends FleetError {
  constructor(declared: number, limit: number) {
    super('packet-too-large', `MQTT packet of ${declared} bytes exceeds the limit of ${limit}`);
  }
}

/**
 * Installs the limit on an Aedes client (the object `aedes.handle(socket)` returns). Throws when the
 * parser does not have the expected shape, so an Aedes or mqtt-packet upgrade that moves it fails the
 * broker's start instead of silently dropping the limit.
 */
export function limitPacketSize(client: unknown, hooks: PacketLimitHooks): void {
  const parser = (client as { _parser?: Partial<ParserInternals> })._parser;
  if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') {
    throw new FleetError('broker-internals', 'the MQTT parser has no length step to limit packet sizes; check the aedes / mqtt-packet versions');
  }
  const p = parser as ParserInternals;
  const parseLength = p._parseLength;
  p._parseLength = function limitedParseLength(this: ParserInternals): boolean {
    if (!parseLength.call(this)) return false;
    const limit = hooks.limitFor();
    if (this.packet.length > limit) {
      hooks.onOversize(this.packet.length, limit, this.packet.cmd);
      // An error stops the parse loop; Aedes closes the connection on a parser error.
      this._emitError(new PacketTooLargeError(this.packet.length, limit));
      return false;
    }
    return true;
  };
}
