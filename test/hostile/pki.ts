/**
 * A throwaway PKI made with the local openssl, with the same commands docs/tls.md gives operators: a
 * server CA and a certificate for 127.0.0.1, and a device CA that issues one client certificate per
 * device (CN = device id). P-256 keys: fast to make, and what small devices handle well.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** CA that signed the coordinator's server certificate: what agents and the CLI trust. */
  serverCa: string;
  serverCert: string;
  serverKey: string;
  /** CA that signs device certificates: the coordinator's FLEET_TLS_CLIENT_CA. */
  deviceCa: string;
  /** Issues a client certificate with subject CN `cn`, signed by `ca` (default the device CA). */
  deviceCert(cn: string, ca?: 'device' | 'server'): { cert: string; key: string };
}

export function makePki(dir: string): TestPki {
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const makeCa = (name: string, cn: string): void =>
    openssl('req', '-x509', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`);
  const issue = (name: string, cn: string, ca: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  makeCa('server-ca', 'fleet test server CA');
  makeCa('device-ca', 'fleet test device CA');
  issue('server', '127.0.0.1', 'server-ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  let n = 0;
  return {
    dir,
    serverCa: join(dir, 'server-ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    deviceCa: join(dir, 'device-ca.pem'),
    deviceCert(cn, ca = 'device') {
      const name = `client-${++n}`;
      issue(name, cn, `${ca}-ca`, 'extendedKeyUsage=clientAuth\n');
      return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
  };
}
