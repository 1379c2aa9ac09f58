/** A lookup of rules (activations, losses) by canonical name or alias. */
export interface Named {
  name: string;
  aliases: string[];
}

export function registry<T extends Named>(kind: string, rules: readonly T[]) {
  const byName = new Map<string, T>(rules.flatMap((r) => [r.name, ...r.aliases].map((n) => [n, r] as const)));
  return {
    /** Canonical names and aliases, for validation and the API documentation. */
    names: [...byName.keys()] as [string, ...string[]],
    get(name: string): T {
      const rule = byName.get(name);
      if (!rule) throw new Error(`unknown ${kind} '${name}'`);
      return rule;
    },
  };
}
