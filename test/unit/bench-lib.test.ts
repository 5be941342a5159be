import { describe, expect, it } from "vitest";
import { fmt, median, medianRatio, percentile } from "../../bench/lib/stats.ts";
import { diffSnapshots, parseCommandStats, parseInfo } from "../../bench/lib/redis-info.ts";
import { renderMarkdown, renderText } from "../../bench/lib/table.ts";

describe("bench/lib/stats", () => {
  it("computes medians and interpolated percentiles", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBeCloseTo(9.91);
    expect(percentile([7], 99)).toBe(7);
    expect(median([])).toBeNaN();
  });

  it("takes the median of per-run ratios, skipping broken pairs", () => {
    expect(medianRatio([2, 6, 30], [1, 2, 3])).toBe(3);
    expect(medianRatio([2, Number.NaN, 8], [1, 1, 2])).toBe(3);
    expect(medianRatio([1], [0])).toBeNaN();
  });

  it("formats numbers for tables", () => {
    expect(fmt(20345.6)).toBe("20,346");
    expect(fmt(5.634)).toBe("5.63");
    expect(fmt(Number.NaN)).toBe("-");
  });
});

describe("bench/lib/redis-info", () => {
  const before = `# Stats\r\ntotal_commands_processed:100\r\n`;
  const cmdBefore = "# Commandstats\r\ncmdstat_info:calls=4,usec=1\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\n";
  const cmdAfter =
    "# Commandstats\r\ncmdstat_info:calls=7,usec=1\r\ncmdstat_evalsha:calls=20,usec=9\r\ncmdstat_zadd:calls=30,usec=1\r\ncmdstat_client|setname:calls=1,usec=1\r\n";

  it("parses INFO sections", () => {
    expect(parseInfo(before).total_commands_processed).toBe("100");
    expect(parseCommandStats(cmdAfter)).toEqual({ info: 7, evalsha: 20, zadd: 30, "client|setname": 1 });
  });

  it("diffs snapshots and removes the probe's own INFO calls", () => {
    const d = diffSnapshots(
      { totalCommands: 100, cpuSec: 1.5, calls: parseCommandStats(cmdBefore) },
      { totalCommands: 144, cpuSec: 1.75, calls: parseCommandStats(cmdAfter) },
    );
    expect(d.total).toBe(41);
    expect(d.cpuSec).toBeCloseTo(0.25);
    expect(d.calls).toEqual({ evalsha: 10, zadd: 30, "client|setname": 1 });
    expect(d.scriptCalls).toBe(10);
  });
});

describe("bench/lib/table", () => {
  it("renders aligned text and markdown", () => {
    const spec = { headers: ["Metric", "a"], rows: [["x", "1"], ["long name", "1,000"]] };
    expect(renderText(spec).split("\n")).toEqual(["Metric         a", "---------  -----", "x              1", "long name  1,000"]);
    expect(renderMarkdown(spec).split("\n")[1]).toBe("| :-------- | ----: |");
  });
});
