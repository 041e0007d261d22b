/** Default of `maxAliasCount`: how many nodes YAML aliases may expand to (the yaml package's own default). */
export const DEFAULT_MAX_YAML_ALIASES = 100;

/**
 * A parsed YAML document as plain data, with aliases expanded at most `maxAliasCount` times: an "alias bomb" of a
 * few hundred bytes would otherwise expand to gigabytes. The yaml package stops it with an uncoded ReferenceError;
 * this returns the problem as text for the caller's typed error (a workflow's, a settings file's).
 */
export function yamlToData(doc: { toJS(options?: { maxAliasCount?: number }): unknown }, maxAliasCount = DEFAULT_MAX_YAML_ALIASES): { value?: unknown; problem?: string } {
  try {
    return { value: doc.toJS({ maxAliasCount }) };
  } catch (error) {
    if (error instanceof ReferenceError && /alias/i.test(error.message)) {
      return { problem: `its aliases expand to more than ${maxAliasCount} nodes (maxAliasCount; an alias bomb?)` };
    }
    return { problem: `not valid YAML: ${(error as Error).message.split('\n')[0]}` };
  }
}
