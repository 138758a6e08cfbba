/**
 * What a deployment means for the devices' anti-rollback floors, said at creation. Pure.
 *
 * A device raises its floor to an image's securityVersion when it commits it, never before (a failed
 * trial falls back to the old image), and no path boots an image below the floor afterwards. So a
 * deployment that raises the floor cannot be rolled back on a device once the device committed it:
 * the rollback command is refused (the device reports `below-security-floor` and stays), and the
 * rollback records it as refused. Devices whose floor is already above the image refuse the manifest.
 */

/** Warnings for a firmware of `securityVersion` sent to devices with these floors. */
export function floorWarnings(firmwareVersion: string, securityVersion: number, floors: readonly number[]): string[] {
  const out: string[] = [];
  const raised = floors.filter((f) => f < securityVersion).length;
  if (raised > 0) {
    out.push(
      `firmware ${firmwareVersion} raises the security floor to ${securityVersion} on ${raised} of the ${floors.length} known target devices: ` +
        `a device that commits it can never boot an older image below ${securityVersion} again, so neither an automatic rollback nor ` +
        '`fleet deploy rollback` can take it back after its commit (it refuses with below-security-floor and stays); a failed trial still falls back',
    );
  }
  const refused = floors.filter((f) => f > securityVersion).length;
  if (refused > 0) {
    out.push(`firmware ${firmwareVersion} has securityVersion ${securityVersion}, below the floor of ${refused} of the ${floors.length} known target devices: they refuse it (below-security-floor)`);
  }
  return out;
}
