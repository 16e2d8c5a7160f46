package mailcopy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// Config says what to copy and how. The zero value of every optional field
// picks a sensible default.
type Config struct {
	Source, Destination imapconn.Account
	Dial                imapconn.Options // dialer, timeouts and logger for both sides

	// Connections caps the concurrent connections per account, counting every
	// one of them (planning, metadata, appends). Default 4. A server that
	// refuses one more connection (imapconn.TooManyConnections) gets fewer: the
	// worker turned away leaves the copy and its folder goes to another.
	Connections int

	// Include and Exclude select source folders by logical path ("/"-joined,
	// namespace prefix stripped); see foldermap.Options.
	Include, Exclude []string
	// MaxMessageSize skips (and reports) larger source messages; 0: no limit.
	MaxMessageSize int64
	// Since limits the copy to messages whose INTERNALDATE is not before it;
	// the zero time copies everything.
	Since time.Time
	// Provider is the source's provider preset id ("gmail" turns on the Gmail
	// folder rules).
	Provider string

	// Fence, when set, proves that this copy may still write to the destination:
	// it is called before and while each message's body is sent (every read of
	// the body), and before the report. Once it returns an error, the copy stops
	// at once with that error as the cause of its cancellation: the APPEND being
	// sent is cut mid-literal, so no part of it is stored, and nothing more is
	// appended. A copier passes the lease of its task (lock and queue delivery),
	// so that a copier paused past its lease (a stopped process, a long GC, a
	// partition) appends nothing once the task may run elsewhere.
	Fence func() error

	// Reached says both accounts were reached before this copy (the api logs in to
	// both before it queues a sync): a failed TLS handshake or greeting is then a
	// network failure worth retrying, not a wrong server setting. A refused login
	// and an untrusted certificate stay permanent.
	Reached bool

	// Previous is the State of an earlier copy of the same accounts
	// (Result.State): folders that LIST-STATUS proves unchanged since are taken
	// as complete without their metadata passes; the others get the full pass.
	// Nil: every folder gets the full pass.
	Previous *State

	DryRun   bool // plan and count; create nothing, append nothing
	NoReport bool // do not append the report to the destination INBOX
	// Language of the report: "en" (the default), "fr" or "pl"; see ReportLanguage.
	Language string
	// IncludeGmailViews copies Gmail's \All, \Flagged and \Important views as
	// folders too. Without it, only All Mail's archived messages (in no other
	// folder) are copied, into the destination's archive folder.
	IncludeGmailViews bool

	// Progress receives snapshots: about every ProgressInterval while
	// messages move, and whenever a folder ends. Called from the copy's
	// goroutines, one call at a time; it should return quickly.
	Progress         func(Progress)
	ProgressInterval time.Duration // default 500ms

	Logger *slog.Logger     // nil: Dial.Logger, else discard
	Now    func() time.Time // the clock of the result, the progress and the report; nil: time.Now

	// Tuning; zero picks the default.
	// Batching sets the MULTIAPPEND batches (see pkg/imapappend); zero
	// fields keep their defaults: up to 2,000 messages (defaultBatchMessages),
	// 8 MiB and only messages up to 1 MiB.
	Batching imapappend.Batching
	// NoMultiappend sends one APPEND per message even when the destination
	// offers MULTIAPPEND (a preset's handling says it cannot be relied on).
	NoMultiappend bool
	// SplitFolders splits a folder missing two chunks or more: its chunks are
	// ranges that idle connections append too (see "Splitting a large
	// folder"). Off by default: on a Dovecot Maildir destination, appends into
	// one folder from several connections wait on its locks, and the split
	// measured slower on loopback; it helps where a connection is the limit.
	SplitFolders  bool
	ChunkMessages int           // messages per source FETCH and Append call, default 2,000
	ChunkBytes    int64         // bytes per source FETCH and Append call, default 128 MiB
	MaxRetries    int           // reconnects in a row without progress, per folder; default 6
	RetryBackoff  time.Duration // first reconnect delay, doubled each time up to 1 minute; default 1s
	// ThrottleBackoff is the wait after a throttling refusal (imapconn.Throttled:
	// Exchange's THROTTLED, Gmail's bandwidth limit) that suggests no time of its
	// own, doubled for each refusal in a row without progress up to
	// maxThrottleBackoff; a suggested time longer than that is honoured as is.
	// Default 30s; the provider preset's ThrottleBackoff when it has one.
	ThrottleBackoff time.Duration
	// MaxThrottles is how many throttling refusals in a row without progress a
	// folder waits out before the copy stops with a temporary failure (the
	// caller retries later). Default 20.
	MaxThrottles int
	// MinBodyRate is the slowest a source may send a message's body, in bytes
	// per second, counted only while the copy waits for the body's bytes (see
	// bodyPace): a body of n bytes received so far may have taken at most
	// BodyRateGrace + n/MinBodyRate of waiting. A source under it fails the
	// attempt like a stalled one (the connection is dropped and the folder
	// retried, a temporary failure once the retries run out): a hostile or
	// broken source that sends one byte per idle period would otherwise hold
	// the task for as long as its announced literal lasts. Default 2,000 B/s,
	// a fifth of the 10 kB/s trickle a copy must survive (TestSlowLinks).
	MinBodyRate int64
	// BodyRateGrace is the waiting every body is allowed before MinBodyRate
	// applies: a small message gets that long whatever its size, and a link
	// that pauses now and then is not cut. Default 2 minutes.
	BodyRateGrace time.Duration
	// CommitSettle is how long a destination folder is left unread after a
	// connection appending to it was lost with commands unanswered: the
	// server may still commit them (see "Delivery semantics"). Default 2s.
	CommitSettle time.Duration

	// wrapBody, set by tests only (export_test.go), wraps each body reader
	// handed to the appender.
	wrapBody func(uid uint32, body io.Reader) io.Reader
}

const (
	defaultConnections      = 4
	defaultProgressInterval = 500 * time.Millisecond
	defaultMaxRetries       = 6
	defaultRetryBackoff     = time.Second
	maxRetryBackoff         = time.Minute
	defaultCommitSettle     = 2 * time.Second
	defaultThrottleBackoff  = 30 * time.Second
	maxThrottleBackoff      = 15 * time.Minute
	defaultMaxThrottles     = 20
	// Decimal, as ByteSize shows it in the error (2.0 kB/s).
	defaultMinBodyRate   = 2_000
	defaultBodyRateGrace = 2 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Connections <= 0 {
		c.Connections = defaultConnections
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = defaultProgressInterval
	}
	if c.Logger == nil {
		c.Logger = c.Dial.Logger
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ChunkMessages <= 0 {
		c.ChunkMessages = defaultChunkMessages
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = defaultChunkBytes
	}
	if c.Batching.Messages <= 0 {
		c.Batching.Messages = defaultBatchMessages
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = defaultMaxRetries
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = defaultRetryBackoff
	}
	if c.CommitSettle <= 0 {
		c.CommitSettle = defaultCommitSettle
	}
	if c.ThrottleBackoff <= 0 {
		c.ThrottleBackoff = defaultThrottleBackoff
	}
	if c.MaxThrottles <= 0 {
		c.MaxThrottles = defaultMaxThrottles
	}
	if c.MinBodyRate <= 0 {
		c.MinBodyRate = defaultMinBodyRate
	}
	if c.BodyRateGrace <= 0 {
		c.BodyRateGrace = defaultBodyRateGrace
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	for _, a := range []struct {
		side Side
		acct imapconn.Account
	}{{SideSource, c.Source}, {SideDestination, c.Destination}} {
		if a.acct.Host == "" || a.acct.Port <= 0 {
			errs = append(errs, fmt.Errorf("%s: no server address", a.side))
		}
		if a.acct.Login == "" {
			errs = append(errs, fmt.Errorf("%s: no login", a.side))
		}
		if a.acct.Security < imapconn.SecurityTLS || a.acct.Security > imapconn.SecurityPlaintext {
			errs = append(errs, fmt.Errorf("%s: no connection security chosen", a.side))
		}
	}
	if c.MaxMessageSize < 0 {
		errs = append(errs, errors.New("negative maximum message size"))
	}
	return errors.Join(errs...)
}

// backoff is the delay before reconnect attempt n (1-based).
func (c Config) backoff(n int) time.Duration {
	d := c.RetryBackoff
	for i := 1; i < n && d < maxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, maxRetryBackoff)
}

// throttleWait is the wait after the n-th throttling refusal in a row (1-based)
// whose server suggested the given time (0: none).
func (c Config) throttleWait(n int, suggested time.Duration) time.Duration {
	d := c.ThrottleBackoff
	for i := 1; i < n && d < maxThrottleBackoff; i++ {
		d *= 2
	}
	d = min(d, maxThrottleBackoff)
	if suggested > 0 {
		// The server knows best: its suggestion, the first time, grown if it
		// keeps refusing.
		d = suggested << min(n-1, 4)
	}
	return d
}
