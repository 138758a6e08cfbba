/**
 * A real RAUC for tests: a test PKI (openssl), format=plain bundles, raw slots that are plain files,
 * `rauc service` on a private session bus (its own dbus-daemon), and a custom bootloader handler script
 * with RAUC's U-Boot semantics (BOOT_ORDER + attempts) in a key=value file. A "boot" is the simulated
 * bootloader picking a slot from that file and restarting the service with --override-boot-slot.
 * Every process started here is killed in dispose(); every wait is bounded.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import { spawnRunner } from '../../agent/slots/command-runner.js';
import type { RaucSlotBackend, RaucBackendConfigSchema } from '../../agent/slots/slot-backend-rauc.js';
import { createRaucBackend } from '../../agent/slots/slot-backend-rauc.js';
import type { VerifiedImage } from '../../agent/slots/slot-backend.js';
import type { SlotName } from '../../protocol/update-state.js';
import type { SlotDevice } from './conformance.js';
import { waitFor } from '../support/wait-for.js';
import type { RecordingRunner } from './helpers.js';
import { TEST_REBOOT, hasTool, makeSlotFiles, recordingRunner } from './helpers.js';

const ATTEMPTS = 3;

/** Why real RAUC cannot run here, or undefined when it can. */
export function raucSkipReason(): string | undefined {
  const missing = ['rauc', 'dbus-daemon', 'mksquashfs', 'unsquashfs', 'openssl'].filter((t) => !hasTool(t));
  if (missing.length) return `missing ${missing.join(', ')} (apt-get install rauc rauc-service squashfs-tools dbus openssl)`;
  if (process.getuid?.() !== 0) return 'RAUC mounts bundles through loop devices, which needs root';
  if (!existsSync('/dev/loop-control')) return 'no loop devices (/dev/loop-control missing)';
  try {
    execFileSync('losetup', ['-f'], { stdio: 'ignore' });
  } catch {
    return 'no free loop device (losetup -f failed)';
  }
  return undefined;
}

export interface RaucPki {
  dir: string;
  cert: string;
  key: string;
}

/** A self-signed CA that also signs bundles (RAUC accepts the CA itself as the signer). */
export async function makePki(dir: string): Promise<RaucPki> {
  await mkdir(dir, { recursive: true });
  const cert = join(dir, 'ca.cert.pem');
  const key = join(dir, 'ca.key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=fleet test CA'], { stdio: 'ignore' });
  return { dir, cert, key };
}

/** Builds a signed format=plain bundle whose rootfs image is `content`. */
export async function makeBundle(pki: RaucPki, dir: string, name: string, content: Buffer, version = '2.0.0'): Promise<VerifiedImage> {
  const input = await mkdtemp(join(dir, `${name}-in-`));
  await writeFile(join(input, 'rootfs.img'), content);
  await writeFile(join(input, 'manifest.raucm'), `[update]\ncompatible=fleet-test\nversion=${version}\n[bundle]\nformat=plain\n[image.rootfs]\nfilename=rootfs.img\n`);
  const path = join(dir, `${name}.raucb`);
  execFileSync('rauc', ['bundle', `--cert=${pki.cert}`, `--key=${pki.key}`, input, path], { stdio: 'ignore' });
  await rm(input, { recursive: true, force: true });
  const bytes = await readFile(path);
  return { path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** RAUC custom bootloader backend: get-primary, set-primary, get-state, set-state over `bootstate`. */
const HANDLER = `#!/bin/sh
F="$(dirname "$0")/bootstate"
get() { sed -n "s/^$1=//p" "$F"; }
put() { if grep -q "^$1=" "$F"; then sed -i "s/^$1=.*/$1=$2/" "$F"; else echo "$1=$2" >> "$F"; fi; }
echo "$*" >> "$F.log"
case "$1" in
  get-primary) for s in $(get ORDER); do if [ "$(get "$s"_LEFT)" -gt 0 ]; then echo "$s"; exit 0; fi; done; exit 1 ;;
  set-primary) o=A; [ "$2" = A ] && o=B; put ORDER "$2 $o"; put "$2"_LEFT ${ATTEMPTS} ;;
  get-state) if [ "$(get "$2"_LEFT)" -gt 0 ]; then echo good; else echo bad; fi ;;
  set-state) if [ "$3" = good ]; then put "$2"_LEFT ${ATTEMPTS}; else put "$2"_LEFT 0; fi ;;
  *) exit 1 ;;
esac
`;

export interface RaucTestDevice extends SlotDevice {
  backend(): RaucSlotBackend;
  config: z.input<typeof RaucBackendConfigSchema>;
  recorder: RecordingRunner;
  busAddress: string;
  /** The handler's state file (ORDER, A_LEFT, B_LEFT). */
  bootstatePath: string;
  boots: SlotName[];
}

/** Every process the harness started and has not seen exit; killed by killAllStarted(). */
const started = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

/** For afterAll: kills whatever a failed or timed-out test left running. */
export async function killAllStarted(): Promise<void> {
  await Promise.all([...started].map((c) => stop(c)));
}


async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

export interface RaucDeviceOptions {
  /** Default dbus. */
  transport?: 'dbus' | 'cli';
  /** system.conf activate-installed; default false (what the backend needs). */
  activateInstalled?: boolean;
}

export async function createRaucDevice(pki: RaucPki, dir: string, initial: Buffer, options: RaucDeviceOptions = {}): Promise<RaucTestDevice> {
  const transport = options.transport ?? 'dbus';
  const devices = await makeSlotFiles(dir, initial);
  const handler = join(dir, 'bootloader.sh');
  const bootstatePath = join(dir, 'bootstate');
  await writeFile(handler, HANDLER);
  await chmod(handler, 0o755);
  await writeFile(bootstatePath, `ORDER=A B\nA_LEFT=${ATTEMPTS}\nB_LEFT=${ATTEMPTS}\n`);
  await mkdir(join(dir, 'rauc-data'));
  const systemConf = join(dir, 'system.conf');
  await writeFile(
    systemConf,
    `[system]\ncompatible=fleet-test\nbootloader=custom\ndata-directory=${join(dir, 'rauc-data')}\nactivate-installed=${options.activateInstalled ? 'true' : 'false'}\n` +
      `[keyring]\npath=${pki.cert}\n[handlers]\nbootloader-custom-backend=${handler}\n` +
      `[slot.rootfs.0]\ndevice=${devices.A}\ntype=raw\nbootname=A\n[slot.rootfs.1]\ndevice=${devices.B}\ntype=raw\nbootname=B\n`,
  );
  const socket = join(dir, 'bus');
  const busAddress = `unix:path=${socket}`;
  const env = { ...process.env, DBUS_SESSION_BUS_ADDRESS: busAddress, DBUS_STARTER_BUS_TYPE: 'session', DBUS_STARTER_ADDRESS: busAddress };
  const dbusDaemon = track(spawn('dbus-daemon', ['--session', `--address=${busAddress}`, '--nofork', '--nopidfile'], { stdio: 'ignore' }));
  let service: ChildProcess | undefined;
  const boots: SlotName[] = [];
  const dispose = async (): Promise<void> => {
    await stop(service);
    await stop(dbusDaemon);
  };
  const raucStatusOk = async (): Promise<boolean> =>
    (await spawnRunner('rauc', ['-c', systemConf, 'status', '--output-format=json'], { env: { DBUS_STARTER_BUS_TYPE: 'session', DBUS_SESSION_BUS_ADDRESS: busAddress }, timeoutMs: 5_000 })).code === 0;

  /** The bootloader: first slot in ORDER with attempts left, decremented (RAUC's U-Boot script). */
  const pickSlot = async (): Promise<SlotName> => {
    const text = await readFile(bootstatePath, 'utf8');
    const get = (k: string): string => new RegExp(`^${k}=(.*)$`, 'm').exec(text)?.[1] ?? '';
    const order = get('ORDER').split(/\s+/).filter((s): s is SlotName => s === 'A' || s === 'B');
    let chosen: SlotName | undefined;
    const left: Record<SlotName, number> = { A: Number(get('A_LEFT')), B: Number(get('B_LEFT')) };
    for (const s of order) {
      if (left[s] > 0) {
        left[s] -= 1;
        chosen = s;
        break;
      }
    }
    if (!chosen) {
      chosen = order[0] ?? 'A';
      left.A = ATTEMPTS;
      left.B = ATTEMPTS;
      left[chosen] -= 1;
    }
    await writeFile(bootstatePath, `ORDER=${order.join(' ')}\nA_LEFT=${left.A}\nB_LEFT=${left.B}\n`);
    return chosen;
  };
  const recorder = recordingRunner();
  const boot = async (): Promise<void> => {
    recorder.takeReboot();
    await stop(service);
    const slot = await pickSlot();
    boots.push(slot);
    service = track(spawn('rauc', ['-c', systemConf, 'service', `--override-boot-slot=${slot}`], { env, stdio: 'ignore' }));
    await waitFor(raucStatusOk, 'rauc service on the private bus');
  };
  try {
    await waitFor(() => existsSync(socket), 'dbus-daemon socket');
    await boot();
  } catch (err) {
    await dispose();
    throw err;
  }
  const config: z.input<typeof RaucBackendConfigSchema> = {
    kind: 'rauc',
    systemConf,
    transport,
    bus: 'session',
    busAddress,
    stateFile: join(dir, 'fleet-rauc-trial.json'),
    rebootCommand: [TEST_REBOOT],
    installTimeoutMs: 60_000,
  };
  return {
    config,
    recorder,
    busAddress,
    bootstatePath,
    boots,
    backend: () => createRaucBackend(config, { runner: recorder.runner }),
    boot,
    readSlot: async (slot, size) => (await readFile(devices[slot])).subarray(0, size),
    async tearWrite(slot, partial) {
      // What RAUC leaves when the power fails mid-install: the target marked bad first, then part of it.
      const text = await readFile(bootstatePath, 'utf8');
      await writeFile(bootstatePath, text.replace(new RegExp(`^${slot}_LEFT=.*$`, 'm'), `${slot}_LEFT=0`));
      const h = await open(devices[slot], 'r+');
      await h.write(partial, 0, partial.length, 0);
      await h.close();
    },
    trialBoots: ATTEMPTS,
    dispose,
  };
}
