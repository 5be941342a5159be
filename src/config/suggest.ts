/** The known name closest to a misspelt one (at most `maxEdits` edits away), for "did you mean" hints. */
export function suggest(key: string, known: string[], maxEdits = 2): string | undefined {
  let best: string | undefined;
  let bestScore = maxEdits + 1;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (d < bestScore) {
      best = candidate;
      bestScore = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}
