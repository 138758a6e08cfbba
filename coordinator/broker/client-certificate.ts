/**
 * TLS for the embedded broker's listener, with optional device client certificates (mutual TLS).
 * With a client CA configured, the handshake refuses a device that presents no certificate or one the
 * CA did not sign; the broker then binds the certificate to the MQTT login: the certificate's subject
 * CN must be the device id the client logs in as, so one device's certificate never opens another
 * device's session. The device secret is still checked: the certificate adds a factor, it does not
 * replace provisioning. Reads files; otherwise pure.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createServer, TLSSocket, type Server, type TlsOptions } from 'node:tls';
import { FleetError, errorMessage } from '@fleet/protocol/errors';

/** PEM files for the MQTT listener. */
export interface BrokerTlsFiles {
  certPath: string;
  keyPath: string;
  /** CA certificate(s) that sign device certificates; set to require one from every device. */
  clientCaPath?: string;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FleetError('mqtt-tls', `cannot read the MQTT TLS ${what} ${path}: ${errorMessage(err)}; check FLEET_TLS_CERT, FLEET_TLS_KEY and FLEET_TLS_CLIENT_CA`, { cause: err });
  }
}

/** The TLS listener; unreadable or mismatched files are a FleetError that names them. */
export function createBrokerTlsServer(files: BrokerTlsFiles, onConnection: (socket: Socket) => void): Server {
  const options = brokerTlsOptions(files);
  try {
    return createServer(options, onConnection);
  } catch (err) {
    throw new FleetError('mqtt-tls', `MQTT TLS certificate ${files.certPath}, key ${files.keyPath}${files.clientCaPath !== undefined ? ` or client CA ${files.clientCaPath}` : ''} unusable: ${errorMessage(err)}; they must be PEM and the key must belong to the certificate (docs/tls.md)`, { cause: err });
  }
}

/** node:tls server options for the listener. */
function brokerTlsOptions(files: BrokerTlsFiles): TlsOptions {
  const options: TlsOptions = { cert: readPem(files.certPath, 'certificate'), key: readPem(files.keyPath, 'key') };
  if (files.clientCaPath !== undefined) {
    options.ca = readPem(files.clientCaPath, 'client CA');
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}

/**
 * Why the connection's client certificate does not vouch for `deviceId`, or undefined when it does.
 * Only meaningful on a listener that requires client certificates.
 */
export function certificateMismatch(conn: unknown, deviceId: string): string | undefined {
  if (!(conn instanceof TLSSocket) || !conn.authorized) return 'a client certificate signed by the device CA is required';
  const cn: unknown = conn.getPeerCertificate().subject?.CN;
  if (typeof cn !== 'string') return 'the client certificate must name the device in a single subject CN';
  if (cn !== deviceId) return `the client certificate is for ${JSON.stringify(cn.slice(0, 128))}, not for device ${deviceId}`;
  return undefined;
}
