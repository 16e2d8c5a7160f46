// Package syncapi owns the api service: the gRPC imapcopy.v1.SyncService that control
// panels call (ListProviders, TestAccount, StartSync, GetSyncStatus, WatchSyncStatus,
// CancelSync), the server around it (TLS, bearer tokens or client certificates, the
// standard health service, reflection, metrics, logs, graceful shutdown) and the api's
// piece of a binary's configuration. The api binary (services/api) and the standalone
// mode compose it with their store and queue: Config.Build, or New and NewServer.
//
// The service is made of small interfaces declared here (Store, Publisher, Sealer,
// AccountProber, PolicyChecker, Catalogue, Clock), so the same code runs on Redis or on
// JetStream key-value buckets.
//
// Guarantees:
//   - Input is validated before anything else: bounded lengths, UTF-8, no CR, LF or NUL
//     anywhere, addresses, hosts, ports, known presets. A refusal is InvalidArgument
//     naming the field and what to fix ("source.login: not an email address: expected
//     user@domain"); it never quotes the value, which may be a password typed in the
//     wrong field.
//   - The network policy is applied before any connection: a refused host is answered
//     REFUSED_BY_POLICY with no packet sent to it, and every dial goes through the
//     policy's dialer (checked on every dial, so DNS rebinding does not pass).
//   - StartSync validates and resolves both accounts, applies the rate limits and the
//     network policy, takes the per-source lock (AlreadyExists "a sync task for this
//     account already exists" while a task is queued or running), tests both logins
//     (FailedPrecondition with the reason, as an ErrorInfo too), records QUEUED, seals
//     the secrets (bound to the task id) and publishes the task with the task id as
//     message id and the lock token for the copier's fenced writes. Any failure after
//     the lock releases it; a failed publish leaves the status FAILED and answers
//     Unavailable. The lock is taken before the logins, so a duplicate start logs in
//     nowhere. Once a task has ended, a new start is accepted (a delta sync).
//   - The source address is trimmed and lowercased (NormalizeAddress): it keys the lock
//     and the status.
//   - Passwords and tokens never reach a log, a metric, an error message or the status;
//     they leave the process only sealed (AEAD) in the task.
//   - TestAccount and StartSync are rate-limited per address and per caller, and the
//     account tests running at once are bounded: ResourceExhausted with a RetryInfo.
//   - Store and publish calls are bounded by timeouts: a store or queue that is down is
//     answered Unavailable, not left to the caller's deadline.
//   - At shutdown, health turns NOT_SERVING, open watch streams end with Unavailable,
//     running calls get a deadline to finish, then the rest is cut.
package syncapi
