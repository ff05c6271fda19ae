/**
 * ModuleGraph: the selected modules as nodes, `require` edges between them, in OSv's module
 * order (dependencies first). Pure.
 */
import { OsvbError } from '../errors/index.js';

export interface GraphNodeInput {
  name: string;
  requires: readonly string[];
}

export class ModuleGraph {
  /** Module names in build order (OSv's order: dependencies before dependents). */
  readonly order: readonly string[];
  private readonly deps = new Map<string, string[]>();
  private readonly rdeps = new Map<string, string[]>();

  constructor(nodes: readonly GraphNodeInput[]) {
    this.order = nodes.map((n) => n.name);
    const known = new Set(this.order);
    for (const n of nodes) {
      const d = [...new Set(n.requires.filter((r) => known.has(r) && r !== n.name))];
      this.deps.set(n.name, d);
      for (const r of d) {
        const list = this.rdeps.get(r) ?? [];
        list.push(n.name);
        this.rdeps.set(r, list);
      }
    }
    this.checkAcyclic();
  }

  has(name: string): boolean {
    return this.deps.has(name);
  }

  dependenciesOf(name: string): readonly string[] {
    return this.deps.get(name) ?? [];
  }

  dependentsOf(name: string): readonly string[] {
    return this.rdeps.get(name) ?? [];
  }

  /** Every module that requires `name`, directly or not. */
  transitiveDependentsOf(name: string): string[] {
    const seen = new Set<string>();
    const stack = [name];
    while (stack.length) {
      for (const d of this.dependentsOf(stack.pop() as string)) {
        if (!seen.has(d)) {
          seen.add(d);
          stack.push(d);
        }
      }
    }
    return this.order.filter((n) => seen.has(n));
  }

  private checkAcyclic(): void {
    const state = new Map<string, 1 | 2>();
    const path: string[] = [];
    const visit = (n: string): void => {
      const s = state.get(n);
      if (s === 2) return;
      if (s === 1) {
        const cycle = [...path.slice(path.indexOf(n)), n];
        throw new OsvbError('OSVB_RECURSIVE_REQUIRE', `require cycle: ${cycle.join(' -> ')}`);
      }
      state.set(n, 1);
      path.push(n);
      for (const d of this.dependenciesOf(n)) visit(d);
      path.pop();
      state.set(n, 2);
    };
    for (const n of this.order) visit(n);
  }
}
