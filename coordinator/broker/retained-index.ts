/**
 * Aedes's memory persistence with its retained messages also indexed by topic. I/O adapter.
 *
 * On every SUBSCRIBE, aedes asks the persistence for the retained messages matching each filter, and
 * the memory persistence answers by testing every retained topic against it. The coordinator retains a
 * manifest on each of 1,024 bucket topics per model, and every device subscribes to three exact topics
 * on every connect: a fleet reconnecting after its trial reboots spent a sixth of the process's CPU
 * splitting retained topic names (qlobber's `_split_words`). A filter without wildcards matches exactly
 * one topic (MQTT 3.1.1 §4.7), so its retained message is a map lookup; filters with wildcards still go
 * to the memory persistence's matcher, which keeps its own copy of every retained message.
 */
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { AedesPersistence, CallbackError } from 'aedes-persistence';

/** The package is CommonJS whose export is the factory (its typings say `default`). */
const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => AedesPersistence;

/** What the index needs of a retained PUBLISH packet. */
interface RetainedPacket {
  topic: string;
  payload: Buffer;
}

/** True when the filter has no `+` or `#` level: it names one topic. */
export function isExactFilter(filter: string): boolean {
  return !filter.includes('+') && !filter.includes('#');
}

/**
 * The memory persistence (aedes's default) with exact-topic lookups of retained messages. Behaves as
 * the memory persistence does, retained messages in the order of the filters asked for.
 */
export function indexedMemoryPersistence(): AedesPersistence {
  const inner = memoryPersistence();
  const byTopic = new Map<string, RetainedPacket>();
  const storeRetained = inner.storeRetained.bind(inner) as (packet: RetainedPacket, cb?: (error: CallbackError) => void) => unknown;
  const wildcardStream = inner.createRetainedStream.bind(inner);
  const index = (packet: RetainedPacket): void => {
    // The memory persistence stores a shallow copy, so a caller reusing its packet changes nothing.
    if (packet.payload.length === 0) byTopic.delete(packet.topic);
    else byTopic.set(packet.topic, { ...packet });
  };
  // aedes calls storeRetained without a callback and awaits the promise; the typings name the callback form.
  inner.storeRetained = ((packet: RetainedPacket, cb?: (error: CallbackError) => void) => {
    index(packet);
    return storeRetained(packet, cb);
  }) as AedesPersistence['storeRetained'];
  const retainedFor = (filters: readonly string[]): Readable => {
    if (filters.every(isExactFilter)) {
      const found: RetainedPacket[] = [];
      for (const f of filters) {
        const p = byTopic.get(f);
        if (p) found.push(p);
      }
      return Readable.from(found);
    }
    return Readable.from(
      (async function* () {
        for (const f of filters) {
          if (isExactFilter(f)) {
            const p = byTopic.get(f);
            if (p) yield p;
          } else {
            yield* wildcardStream(f) as AsyncIterable<RetainedPacket>;
          }
        }
      })(),
    );
  };
  inner.createRetainedStream = (filter: string) => retainedFor([filter]);
  inner.createRetainedStreamCombi = (filters: string[]) => retainedFor(filters);
  return inner;
}
