/** Plain-text and Markdown tables (no dependency, so a results file diffs cleanly). */

export type Align = "left" | "right";

export interface TableSpec {
  headers: string[];
  rows: string[][];
  /** Per column; default: first column left, the others right. */
  align?: Align[];
}

function alignOf(spec: TableSpec, col: number): Align {
  return spec.align?.[col] ?? (col === 0 ? "left" : "right");
}

function widths(spec: TableSpec): number[] {
  return spec.headers.map((h, i) => Math.max(h.length, ...spec.rows.map((r) => (r[i] ?? "").length)));
}

function pad(text: string, width: number, align: Align): string {
  return align === "left" ? text.padEnd(width) : text.padStart(width);
}

export function renderText(spec: TableSpec): string {
  const w = widths(spec);
  const line = (cells: string[]): string =>
    cells.map((c, i) => pad(c, w[i]!, alignOf(spec, i))).join("  ").trimEnd();
  const sep = w.map((n) => "-".repeat(n)).join("  ");
  return [line(spec.headers), sep, ...spec.rows.map((r) => line(spec.headers.map((_, i) => r[i] ?? "")))].join("\n");
}

export function renderMarkdown(spec: TableSpec): string {
  const w = widths(spec).map((n) => Math.max(n, 3));
  const line = (cells: string[]): string =>
    "| " + cells.map((c, i) => pad(c.replace(/\|/g, "\\|"), w[i]!, alignOf(spec, i))).join(" | ") + " |";
  const sep = "| " + w.map((n, i) => (alignOf(spec, i) === "left" ? ":" + "-".repeat(n - 1) : "-".repeat(n - 1) + ":")).join(" | ") + " |";
  return [line(spec.headers), sep, ...spec.rows.map((r) => line(spec.headers.map((_, i) => r[i] ?? "")))].join("\n");
}
