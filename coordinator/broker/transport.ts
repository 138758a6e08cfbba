/**
 * The coordinator's view of MQTT, whichever broker carries it: publish (in-process for the embedded
 * broker, as a client for an external one) and receive device messages. Pure interface.
 */
export interface PublishOptions {
  qos: 0 | 1;
  retain: boolean;
}

/**
 * A device message as received. `ack` must be called once the message is durably handled; for QoS 1
 * on the embedded broker the PUBACK waits for it, so an acknowledged status is never lost.
 */
export interface InboundMessage {
  topic: string;
  payload: Buffer;
  /** The authenticated device (embedded broker) or undefined (external broker). */
  clientDeviceId: string | undefined;
  ack: (err?: Error) => void;
}

export interface DeviceConnectionEvents {
  onConnect?: (deviceId: string) => void;
  onDisconnect?: (deviceId: string) => void;
}

export interface Transport {
  /** Where devices connect, e.g. mqtt://127.0.0.1:41883. */
  readonly url: string;
  /**
   * Makes `publish` work before devices can connect (the embedded broker exists but does not listen
   * yet), so state restored after a restart reaches devices only as retained messages, never as a
   * duplicate live delivery. Optional to call; `start` calls it.
   */
  prepare(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void>;
  /** The handler for every device message; set once before start. */
  onMessage(handler: (message: InboundMessage) => void): void;
  onConnection(events: DeviceConnectionEvents): void;
  /**
   * The broker lost its retained messages while running (an embedded cluster's Redis restarted
   * empty): the handler publishes them again. Absent where that cannot happen.
   */
  onRetainedLost?(handler: () => void): void;
  /** Currently connected device ids (embedded broker only; external returns undefined). */
  connectedDevices(): ReadonlySet<string> | undefined;
}
