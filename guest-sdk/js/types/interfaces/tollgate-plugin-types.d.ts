declare module 'tollgate:plugin/types@0.4.0' {
  /**
   * Which API the caller spoke.
   * # Variants
   * 
   * ## `"messages"`
   * 
   * `POST /v1/messages` (Anthropic Messages API).
   * ## `"count-tokens"`
   * 
   * `POST /v1/messages/count_tokens`.
   * ## `"chat-completions"`
   * 
   * `POST /v1/chat/completions` (OpenAI Chat Completions API).
   */
  export type Endpoint = 'messages' | 'count-tokens' | 'chat-completions';
  /**
   * Everything a plugin may know about one request, cheap to build.
   * The full body is not copied in: call `host.request-body` when needed.
   */
  export interface RequestContext {
    /**
     * The gateway's id for this request (also sent back as `request-id`).
     */
    requestId: string,
    /**
     * `x-portkey-trace-id`, or the request id when the caller sent none.
     */
    traceId: string,
    /**
     * Tenant id the API key belongs to.
     */
    tenant: string,
    /**
     * Public id of the API key (never the secret).
     */
    keyId: string,
    /**
     * Human name given to the key at creation.
     */
    keyName: string,
    /**
     * Team the key is bound to, else the `team` metadata value, if any.
     */
    team?: string,
    /**
     * User the key is bound to, else the `user` metadata value, if any.
     */
    user?: string,
    /**
     * The `x-portkey-metadata` object, keys case-sensitive, sorted by key, one pair per
     * key (a key the header repeats keeps its last value, as in a JSON object).
     */
    metadata: Array<[string, string]>,
    /**
     * The model the caller asked for.
     */
    model: string,
    endpoint: Endpoint,
    /**
     * Whether the caller asked for a streamed (SSE) response.
     */
    stream: boolean,
    /**
     * `max_tokens` (or `max_completion_tokens`) from the body, if present.
     */
    maxTokens?: number,
    /**
     * Size of the request body in bytes.
     */
    bodyBytes: number,
    /**
     * Rough prompt size in tokens (about four bytes of text per token).
     */
    promptTokensEstimate: number,
    /**
     * Number of messages in the conversation.
     */
    messageCount: number,
  }
  /**
   * Why a request is refused: shown to the caller in its API's error shape.
   */
  export interface Denial {
    /**
     * HTTP status, 400..=599 (others are clamped to 403).
     */
    status: number,
    /**
     * Error type, e.g. `permission_error` or `invalid_request_error`.
     */
    errorType: string,
    /**
     * Message shown to the caller.
     */
    message: string,
  }
  /**
   * A label recorded in the request log next to the plugin's decision.
   */
  export interface Annotation {
    /**
     * The label's name, e.g. `route_rule`.
     */
    key: string,
    /**
     * The label's value.
     */
    value: string,
  }
  /**
   * The outcome of the policy hook.
   */
  export type Decision = DecisionAllow | DecisionAllowWith | DecisionDeny;
  /**
   * Let the request through.
   */
  export interface DecisionAllow {
    tag: 'allow',
  }
  /**
   * Let the request through and record these labels in its log row.
   */
  export interface DecisionAllowWith {
    tag: 'allow-with',
    val: Array<Annotation>,
  }
  /**
   * Refuse the request; later plugins do not run.
   */
  export interface DecisionDeny {
    tag: 'deny',
    val: Denial,
  }
  /**
   * Hooks a plugin may implement.
   * # Variants
   * 
   * ## `"policy"`
   * 
   * `guest.policy`: allow or deny a request before routing.
   * ## `"route"`
   * 
   * `guest.route`: choose where an allowed request is served.
   * ## `"budget"`
   * 
   * `guest.budget`: grant the limits a routed request is held to, or downgrade it
   * to a cheaper target.
   * ## `"inspect-request"`
   * 
   * `guest.inspect-request`: check or rewrite the conversation before it is routed.
   * ## `"inspect-response"`
   * 
   * `guest.inspect-response`: check or rewrite the model's answer.
   */
  export type Hook = 'policy' | 'route' | 'budget' | 'inspect-request' | 'inspect-response';
  /**
   * How the host walks a route plan's targets.
   * # Variants
   * 
   * ## `"single"`
   * 
   * Only the first target (with its retries).
   * ## `"fallback"`
   * 
   * Each target in order until one succeeds.
   * ## `"load-balance"`
   * 
   * One target picked at random by weight; the others follow as fallbacks, in order.
   */
  export type Strategy = 'single' | 'fallback' | 'load-balance';
  /**
   * One place a request may be served.
   */
  export interface RouteTarget {
    /**
     * Provider id from the gateway config.
     */
    provider: string,
    /**
     * Model to ask that provider for; none keeps the requested model.
     */
    model?: string,
    /**
     * Share of traffic under `load-balance` (ignored otherwise; 0 never picked first).
     */
    weight: number,
    /**
     * Lower the request's max_tokens to at most this.
     */
    maxTokensCap?: number,
  }
  /**
   * Upstream outcomes that end an attempt and move on (retry, then next target).
   */
  export interface RetryOn {
    /**
     * Upstream HTTP statuses, e.g. 429, 500, 502, 503, 504.
     */
    statuses: Uint16Array,
    /**
     * No response headers within the attempt timeout.
     */
    timeout: boolean,
    /**
     * Connection refused, reset or DNS failure.
     */
    connectError: boolean,
  }
  /**
   * Where and how to serve a request.
   */
  export interface RoutePlan {
    /**
     * How the targets are walked.
     */
    strategy: Strategy,
    /**
     * Ordered targets; must not be empty.
     */
    targets: Array<RouteTarget>,
    /**
     * Outcomes that move on to the next attempt.
     */
    retryOn: RetryOn,
    /**
     * Extra attempts on the same target before moving on.
     */
    retries: number,
    /**
     * First backoff between retries; doubles each time, with jitter. An upstream
     * `retry-after` (up to `max-backoff-ms`) takes precedence.
     */
    backoffMs: number,
    /**
     * Cap on any single wait between attempts.
     */
    maxBackoffMs: number,
    /**
     * Time allowed for each attempt to return response headers; none = provider default.
     */
    attemptTimeoutMs?: number,
    /**
     * Labels recorded in the request log (e.g. which rule matched).
     */
    labels: Array<Annotation>,
  }
  /**
   * Whose usage is counted. The value is taken from the request being decided
   * (its tenant, team, user, key id or metadata value); always within its tenant.
   */
  export type Scope = ScopeTenant | ScopeTeam | ScopeUser | ScopeKey | ScopeMetadata;
  /**
   * The tenant the API key belongs to.
   */
  export interface ScopeTenant {
    tag: 'tenant',
  }
  /**
   * The key's team, else the `team` metadata value.
   */
  export interface ScopeTeam {
    tag: 'team',
  }
  /**
   * The key's user, else the `user` metadata value.
   */
  export interface ScopeUser {
    tag: 'user',
  }
  /**
   * The API key, by its public id.
   */
  export interface ScopeKey {
    tag: 'key',
  }
  /**
   * A metadata key, e.g. `project`.
   */
  export interface ScopeMetadata {
    tag: 'metadata',
    val: string,
  }
  /**
   * What a limit counts.
   * # Variants
   * 
   * ## `"cost"`
   * 
   * Spend in US dollars, from the served model's prices.
   * ## `"tokens"`
   * 
   * Input, output and cache tokens together.
   * ## `"requests"`
   * 
   * Requests admitted.
   */
  export type Metric = 'cost' | 'tokens' | 'requests';
  /**
   * The length of a usage window.
   * # Variants
   * 
   * ## `"minute"`
   * 
   * One minute.
   * ## `"hour"`
   * 
   * One hour.
   * ## `"day"`
   * 
   * One day.
   * ## `"week"`
   * 
   * One week (calendar: from Monday; rolling: 7 days).
   * ## `"month"`
   * 
   * One month (calendar: from the 1st; rolling: 30 days).
   * ## `"total"`
   * 
   * Everything ever counted (never resets).
   */
  export type Period = 'minute' | 'hour' | 'day' | 'week' | 'month' | 'total';
  /**
   * How a window moves.
   * # Variants
   * 
   * ## `"calendar"`
   * 
   * Resets at the start of each UTC minute, hour, day, ISO week (Monday) or month.
   * ## `"rolling"`
   * 
   * The last minute, hour, day, 7 days or 30 days, sliding.
   */
  export type Window = 'calendar' | 'rolling';
  /**
   * One scope's usage in one window. Counts include requests still running, at
   * their reserved estimate (also reported on their own).
   */
  export interface UsageReport {
    /**
     * The scope's value (e.g. the team name); none when the request has none.
     */
    value?: string,
    /**
     * Requests admitted, including those still running.
     */
    requests: bigint,
    /**
     * Input, output and cache tokens, including reservations.
     */
    tokens: bigint,
    /**
     * Spend in US dollars, including reservations.
     */
    costUsd: number,
    /**
     * Part of the above held by requests still running.
     */
    reservedRequests: bigint,
    /**
     * Part of `tokens` reserved by requests still running.
     */
    reservedTokens: bigint,
    /**
     * Part of `cost-usd` reserved by requests still running.
     */
    reservedCostUsd: number,
    /**
     * When a calendar window resets; for a rolling window, when enough of the
     * oldest usage has left it to free a request (an estimate).
     */
    resetsAtMs: bigint,
  }
  /**
   * A cap the host enforces for one request, atomically with other requests:
   * the request is admitted only while the scope's usage is below `limit`, and
   * reserves its estimate until it ends.
   */
  export interface BudgetLimit {
    /**
     * Shown in denials, alerts and the admin API, e.g. `team-daily-cost`.
     */
    name: string,
    /**
     * Whose usage is counted.
     */
    scope: Scope,
    /**
     * What is counted.
     */
    metric: Metric,
    /**
     * The window's length.
     */
    period: Period,
    /**
     * How the window moves (calendar by default in the SDK).
     */
    window: Window,
    /**
     * The cap, in the metric's unit (US dollars, tokens or requests).
     */
    limit: number,
    /**
     * Percentages of `limit` at which the host raises an alert, once per period.
     */
    alertAt: Uint32Array,
  }
  /**
   * What the budget hook lets through.
   */
  export interface BudgetGrant {
    /**
     * Caps to enforce (those whose scope the request has no value for are skipped).
     */
    limits: Array<BudgetLimit>,
    /**
     * Serve the request here instead of the routed plan (e.g. a cheaper model).
     */
    downgrade?: RouteTarget,
    /**
     * Labels recorded in the request log.
     */
    labels: Array<Annotation>,
  }
  /**
   * The outcome of the budget hook.
   */
  export type BudgetDecision = BudgetDecisionAllow | BudgetDecisionDeny;
  /**
   * Let the request through, subject to the grant's limits.
   */
  export interface BudgetDecisionAllow {
    tag: 'allow',
    val: BudgetGrant,
  }
  /**
   * Refuse the request; later plugins do not run.
   */
  export interface BudgetDecisionDeny {
    tag: 'deny',
    val: Denial,
  }
  /**
   * Who wrote a piece of text.
   * # Variants
   * 
   * ## `"system"`
   * 
   * The system prompt (Anthropic `system`, OpenAI `system` or `developer` messages).
   * ## `"user"`
   * 
   * The person or program calling the model.
   * ## `"assistant"`
   * 
   * The model (earlier turns in a request; the answer in a response).
   * ## `"tool"`
   * 
   * The output of a tool, sent back to the model (`tool_result`, `role: tool`).
   */
  export type Role = 'system' | 'user' | 'assistant' | 'tool';
  /**
   * One piece of text, as plain text whatever API the client spoke.
   */
  export interface TextPart {
    /**
     * The part's number within this call; edits name it.
     */
    id: number,
    /**
     * Who wrote it.
     */
    role: Role,
    /**
     * In a request, the index of its message in `messages` (none for Anthropic's
     * top-level `system`); in an answer, the choice (0 unless the client asked for
     * several).
     */
    message?: number,
    /**
     * The text.
     */
    text: string,
  }
  /**
   * A tool call: one the model makes in an answer, or an earlier one a request
   * carries.
   */
  export interface ToolCall {
    /**
     * The tool's name.
     */
    name: string,
    /**
     * Its arguments, as JSON text.
     */
    arguments: string,
  }
  /**
   * What a request sends to the model, in one shape for both APIs.
   */
  export interface Conversation {
    /**
     * The system prompt, then every message's text and tool results, in order.
     */
    parts: Array<TextPart>,
    /**
     * Tool calls in earlier assistant turns (read only).
     */
    toolCalls: Array<ToolCall>,
    /**
     * Parts that are not text (images, documents, ...): passed on untouched.
     */
    otherParts: number,
  }
  /**
   * The model's answer, in one shape for both APIs.
   */
  export interface Answer {
    /**
     * The answer's text, in order.
     */
    parts: Array<TextPart>,
    /**
     * Tool calls the model made (read only).
     */
    toolCalls: Array<ToolCall>,
    /**
     * Why the model stopped, in the client's API (`end_turn`, `stop`, `tool_use`...).
     */
    stopReason?: string,
    /**
     * Input tokens the provider reported.
     */
    inputTokens: bigint,
    /**
     * Output tokens the provider reported.
     */
    outputTokens: bigint,
    /**
     * The answer was streamed and has already reached the client (the tenant chose
     * `observe` for this plugin): a denial or edit is only recorded in the log.
     */
    delivered: boolean,
  }
  /**
   * What a guardrail found, for the log and the console. Never the matched text.
   */
  export interface Finding {
    /**
     * The rule that matched, e.g. `email` or `no-codenames` (at most 64 bytes).
     */
    rule: string,
    /**
     * What kind of thing it is, e.g. `pii`, `credential`, `injection` (at most 64 bytes).
     */
    kind: string,
    /**
     * How many times it was found.
     */
    count: number,
  }
  /**
   * Replace bytes `start..end` of a part's text with `replacement`.
   */
  export interface TextEdit {
    /**
     * The part's `id`.
     */
    part: number,
    /**
     * First byte replaced (on a character boundary).
     */
    start: number,
    /**
     * End of the replaced bytes, exclusive (on a character boundary; `start` for an
     * insertion).
     */
    end: number,
    /**
     * The new text.
     */
    replacement: string,
  }
  /**
   * Changes a guardrail makes to the text. The host applies at most 4096 edits and
   * 64 KiB of added text per call; a rewrite it cannot apply whole fails the request.
   */
  export interface Rewrite {
    /**
     * Edits of the parts' text; two edits of one part must not overlap.
     */
    edits: Array<TextEdit>,
    /**
     * Text added at the end of the system prompt (requests only).
     */
    appendSystem?: string,
    /**
     * What was found, for the log.
     */
    findings: Array<Finding>,
  }
  /**
   * A guardrail's refusal.
   */
  export interface Refusal {
    /**
     * What the client is told.
     */
    denial: Denial,
    /**
     * What was found, for the log.
     */
    findings: Array<Finding>,
  }
  /**
   * The outcome of a guardrail hook.
   */
  export type Verdict = VerdictAllow | VerdictFlag | VerdictDeny | VerdictRewrite;
  /**
   * Nothing to say.
   */
  export interface VerdictAllow {
    tag: 'allow',
  }
  /**
   * Let it through unchanged, recording what was found.
   */
  export interface VerdictFlag {
    tag: 'flag',
    val: Array<Finding>,
  }
  /**
   * Refuse it; later plugins do not run.
   */
  export interface VerdictDeny {
    tag: 'deny',
    val: Refusal,
  }
  /**
   * Let it through with these changes.
   */
  export interface VerdictRewrite {
    tag: 'rewrite',
    val: Rewrite,
  }
  /**
   * What `describe` returns.
   */
  export interface PluginInfo {
    /**
     * Short machine name, e.g. `metadata-policy`.
     */
    name: string,
    /**
     * The plugin's own semantic version.
     */
    version: string,
    /**
     * Hooks the host should call; others are skipped without entering the plugin.
     */
    hooks: Array<Hook>,
    /**
     * JSON Schema of the plugin's config, for documentation and tooling.
     */
    configSchema: string,
  }
  /**
   * Severity of a plugin log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * Very detailed tracing.
   * ## `"debug"`
   * 
   * Debugging detail.
   * ## `"info"`
   * 
   * Normal operation.
   * ## `"warn"`
   * 
   * Something unexpected that the plugin handled.
   * ## `"error"`
   * 
   * Something the plugin could not handle.
   */
  export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
