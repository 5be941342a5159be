/**
 * Celery wire-protocol support (Celery 5.2 / kombu 5.2 over Redis): decode task messages, encode task
 * messages and retries, encode/decode result meta, and kombu's Redis key names. See docs/celery.md.
 */
export {
  celeryMessageSummary,
  celeryTaskIdOf,
  decodeCeleryMessage,
  peekCeleryIdentity,
  type CeleryEmbed,
  type CeleryTaskRequest,
  type DecodeOptions,
} from "./envelope.ts";
export {
  encodeCeleryTask,
  encodeCeleryRetry,
  defaultOrigin,
  DEFAULT_MAX_RETRIES,
  DEFAULT_RETRY_DELAY_MS,
  type CelerySendOptions,
  type CeleryRetryOptions,
  type EncodedCeleryMessage,
} from "./encode.ts";
export {
  CeleryState,
  CeleryTaskError,
  EXCEPTION_STATES,
  FOREIGN_EXCEPTION_MODULE,
  JS_TO_PYTHON_EXCEPTION,
  PYTHON_BUILTIN_EXCEPTIONS,
  READY_STATES,
  buildResultMeta,
  decodeResultMeta,
  failureMeta,
  notRegisteredMeta,
  pythonExceptionFor,
  retryMeta,
  revokedMeta,
  serializeResultMeta,
  startedMeta,
  successMeta,
  toCeleryException,
  tracebackFor,
  type CeleryExceptionInfo,
  type CeleryResultMeta,
  type CeleryStateName,
  type DecodedCeleryResult,
  type ResultMetaOptions,
} from "./result.ts";
export * from "./keys.ts";
export { formatAwareUtc, formatNaiveUtc, parseIsoDateTime, type NaiveTimezone } from "./time.ts";
export { pyRepr, pyReprArgs, pyReprKwargs } from "./pyrepr.ts";
