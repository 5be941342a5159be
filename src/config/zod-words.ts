/**
 * zod's own issue messages ("Too small: expected number to be >=1", "Invalid input: expected int, received
 * number") in the words the rest of qworker's errors use, for where no message of ours is set. The value
 * found is named by the caller, so "received …" is dropped.
 */
export function plainZodMessage(message: string): string {
  return message
    .replace(/^Invalid (input|option): /, "")
    .replace(/, received \w+$/, "")
    .replace(/^Too (?:small|big): expected (\w+) to be ([<>]=?)(\S+)$/, (_m, type: string, op: string, n: string) => `expected a ${type} ${op} ${n}`)
    .replace(/^Too small: expected (\w+) to have >=1 (items|characters)$/, (_m, type: string) => `expected a non-empty ${type === "array" ? "list" : type}`)
    .replace(/^Too (?:small|big): expected (\w+) to have ([<>]=?)(\d+) (items|characters)$/, (_m, type: string, op: string, n: string, what: string) => `expected a ${type === "array" ? "list" : type} of ${op} ${n} ${what}`)
    .replace(/^expected int$/, "expected an integer")
    // zod's names for YAML's shapes: a mapping is a "record" or an "object" to it, a list an "array".
    .replace(/^expected (record|object)$/, "expected a mapping (key: value)")
    .replace(/^expected array$/, "expected a list, e.g. [a, b]")
    .replace(/^expected boolean$/, "expected true or false");
}
