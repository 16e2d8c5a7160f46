// Command imapcopy-demo shows imapcopy at work in about a minute, with no account of
// one's own (make demo). It starts two local IMAP servers (Dovecot when installed,
// else go-imap's in-memory server), fills the source account with a small realistic
// mailbox, starts the standalone service (bin/imapcopy, as a child process on a data
// directory and a port of its own), and then, as any client would, over gRPC: lists
// the provider presets, tests both accounts, starts the sync, shows its live progress,
// prints the final status and the report as the destination received it. It ends
// with the line COMPLETED, or fails.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func main() {
	// Output piped into a reader that quits (| head) must not kill the demo before it
	// has stopped its servers and the service: the rest of the output is then lost.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal stops the demo cleanly; a second one kills it at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imapcopy-demo:", err)
		os.Exit(1)
	}
}

// options are the demo's flags.
type options struct {
	binary   string
	messages int
	seed     int64
	memory   bool
	keep     bool
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("imapcopy-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binary, "imapcopy", "", "the imapcopy binary to run (default: the one next to this program, else on PATH)")
	fs.IntVar(&o.messages, "messages", 200, "messages in the generated source mailbox")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the generated mailbox (same seed, same mails)")
	fs.BoolVar(&o.memory, "memory", false, "use go-imap's in-memory IMAP server even when Dovecot is installed")
	fs.BoolVar(&o.keep, "keep", false, "keep the demo's directory (the service's data and log) at the end")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.messages < 1 {
		return nil, fmt.Errorf("-messages %d: expected 1 or more", o.messages)
	}
	return &o, nil
}

// run is the whole demo but for the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	bin, err := findBinary(o.binary)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "imapcopy-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(stdout, "\nThe demo's directory is kept: %s (data/, imapcopy.log)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	d := &demo{out: stdout, tty: isTerminal(stdout)}
	d.say("imapcopy demo: two local IMAP servers, a generated mailbox, the standalone service,")
	d.say("and a sync driven through its gRPC API, as a control panel would.")

	d.step("Two IMAP servers on loopback")
	srv, err := startServers(dir, o.memory)
	if err != nil {
		return fmt.Errorf("start the IMAP servers: %w", err)
	}
	defer srv.Close()
	d.say("  source:       %-24s %s", srv.src.login, srv.src.kind)
	d.say("  destination:  %-24s %s", srv.dst.login, srv.dst.kind)

	d.step("Filling the source account")
	mb := imaptest.Generate(o.seed, imaptest.Spec{Count: o.messages})
	if err := imaptest.Load(ctx, srv.src.acct, mb); err != nil {
		return fmt.Errorf("fill the source: %w", err)
	}
	d.say("  %s: nested and non-ASCII folder names, Sent/Drafts/Trash/Junk/Archive,", describe(mb))
	d.say("  flags and keywords, dates over five years, attachments, identical duplicates")

	d.step("Starting the service: " + bin)
	svc, err := startService(bin, dir, srv.caFile)
	if err != nil {
		return err
	}
	defer func() {
		if serr := svc.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop imapcopy: %w", serr)
		}
	}()
	if err := svc.waitServing(ctx, time.Minute); err != nil {
		return err
	}
	d.say("  gRPC on %s (plain, loopback), health SERVING; its log: %s", svc.addr, svc.logPath)
	d.say("  IMAPCOPY_ALLOW_NETWORKS=127.0.0.1/32,::1/128 lets it reach the local servers")

	final, err := d.sync(ctx, svc.api, srv)
	if err != nil {
		return err
	}

	d.step("The report, as the destination received it (INBOX)")
	if err := d.printReport(ctx, srv.dst); err != nil {
		return err
	}

	if final.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		return fmt.Errorf("the sync ended %s: %s %s", stateName(final.GetState()), final.GetMessage(), final.GetFailureReason())
	}
	t := final.GetTotal()
	d.say("")
	d.say("The same calls with grpcurl: README.md, Quick start.")
	d.say("COMPLETED: %d messages copied from %s to %s in %s",
		t.GetMessagesCopied(), srv.src.login, srv.dst.login, elapsed(final))
	return nil
}

// demo prints the story.
type demo struct {
	out io.Writer
	tty bool
	n   int
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) step(title string) {
	d.n++
	d.say("\n%d. %s", d.n, title)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sync is the client's part: providers, account tests, start, watch, status.
func (d *demo) sync(ctx context.Context, api imapcopyv1.SyncServiceClient, srv *servers) (*imapcopyv1.SyncStatus, error) {
	d.step("ListProviders: the presets a control panel offers")
	providers, err := api.ListProviders(ctx, &imapcopyv1.ListProvidersRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListProviders: %w", err)
	}
	var ids []string
	for _, p := range providers.GetProviders() {
		ids = append(ids, p.GetId())
	}
	d.say("  %d presets: %s", len(ids), strings.Join(ids, ", "))
	d.say(`  the local servers are "other": host, port and security given by hand`)

	src := account(srv.src)
	dst := account(srv.dst)
	d.step("TestAccount: connect, TLS, log in, look around")
	for _, t := range []struct {
		name string
		acct *imapcopyv1.Account
		role imapcopyv1.AccountRole
	}{
		{"source", src, imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE},
		{"destination", dst, imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION},
	} {
		r, err := api.TestAccount(ctx, &imapcopyv1.TestAccountRequest{Account: t.acct, Role: t.role})
		if err != nil {
			return nil, fmt.Errorf("TestAccount %s: %w", t.name, err)
		}
		if !r.GetOk() {
			return nil, fmt.Errorf("TestAccount %s: %s: %s", t.name, r.GetFailure(), r.GetMessage())
		}
		d.say("  %-12s ok: %d folders, %d messages, %s; separator %q, prefix %q",
			t.name+":", r.GetFolderCount(), r.GetMessageCount(), size(r.GetTotalBytes()), r.GetSeparator(), r.GetNamespacePrefix())
	}

	d.step("StartSync")
	started, err := api.StartSync(ctx, &imapcopyv1.StartSyncRequest{Source: src, Destination: dst})
	if err != nil {
		return nil, fmt.Errorf("StartSync: %w", err)
	}
	d.say("  task %s: %s (%s)", started.GetTaskId(), stateName(started.GetStatus().GetState()), started.GetStatus().GetMessage())

	d.step("WatchSyncStatus: live progress")
	if err := d.watch(ctx, api, srv.src.login); err != nil {
		return nil, err
	}

	d.step("GetSyncStatus: the final status")
	got, err := api.GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: srv.src.login})
	if err != nil {
		return nil, fmt.Errorf("GetSyncStatus: %w", err)
	}
	d.printStatus(got.GetStatus())
	return got.GetStatus(), nil
}

// account is the request form of a demo account: provider "other" with its server.
func account(m *mailServer) *imapcopyv1.Account {
	return &imapcopyv1.Account{
		Provider: "other", Login: m.login, Password: m.acct.Password,
		Host: m.acct.Host, Port: uint32(m.acct.Port), Security: imapcopyv1.Security_SECURITY_TLS,
	}
}

// watch follows the status stream until a terminal state: on a terminal, one line
// redrawn in place; otherwise a line per state and at most one a second between.
func (d *demo) watch(ctx context.Context, api imapcopyv1.SyncServiceClient, source string) error {
	stream, err := api.WatchSyncStatus(ctx, &imapcopyv1.WatchSyncStatusRequest{SourceEmail: source})
	if err != nil {
		return fmt.Errorf("WatchSyncStatus: %w", err)
	}
	var lastState imapcopyv1.SyncState
	var lastPrint time.Time
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if d.tty {
				d.say("")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("WatchSyncStatus: %w", err)
		}
		st := r.GetStatus()
		line := fmt.Sprintf("  %-10s %s", stateName(st.GetState()), progress(st))
		changed := st.GetState() != lastState
		switch {
		case d.tty:
			if changed && lastState != imapcopyv1.SyncState_SYNC_STATE_UNSPECIFIED {
				fmt.Fprintln(d.out)
			}
			fmt.Fprintf(d.out, "\r\033[K%s", line)
		case changed || time.Since(lastPrint) >= time.Second || syncstatus.Terminal(st.GetState()):
			d.say("%s", line)
			lastPrint = time.Now()
		}
		lastState = st.GetState()
	}
}

// progress is a status in one line.
func progress(st *imapcopyv1.SyncStatus) string {
	t := st.GetTotal()
	if st.GetState() == imapcopyv1.SyncState_SYNC_STATE_QUEUED || t.GetMessagesTotal() == 0 {
		return st.GetMessage()
	}
	done := 0
	for _, f := range st.GetFolders() {
		if f.GetState() == imapcopyv1.FolderState_FOLDER_STATE_DONE {
			done++
		}
	}
	data := size(t.GetBytesCopied())
	if t.GetBytesTotal() > 0 {
		data += " of " + size(t.GetBytesTotal())
	}
	s := fmt.Sprintf("%d/%d messages, %s copied, %d/%d folders done",
		t.GetMessagesCopied()+t.GetMessagesPresent(), t.GetMessagesTotal(), data, done, len(st.GetFolders()))
	if n := t.GetMessagesFailed(); n > 0 {
		s += fmt.Sprintf(", %d refused", n)
	}
	return s
}

func stateName(s imapcopyv1.SyncState) string {
	return strings.TrimPrefix(s.String(), "SYNC_STATE_")
}

func elapsed(st *imapcopyv1.SyncStatus) string {
	if st.GetStartedAt() == nil || st.GetFinishedAt() == nil {
		return "?"
	}
	return st.GetFinishedAt().AsTime().Sub(st.GetStartedAt().AsTime()).Round(100 * time.Millisecond).String()
}

// printStatus shows the final status: totals, then each folder and where it went.
func (d *demo) printStatus(st *imapcopyv1.SyncStatus) {
	t := st.GetTotal()
	d.say("  state %s (%s), attempt %d, %s", stateName(st.GetState()), st.GetMessage(), st.GetAttempt(), elapsed(st))
	d.say("  %d messages copied, %d already there, %d refused, %d skipped; %s",
		t.GetMessagesCopied(), t.GetMessagesPresent(), t.GetMessagesFailed(), t.GetMessagesSkipped(), size(t.GetBytesCopied()))
	if r := st.GetFailureReason(); r != "" {
		d.say("  failure: %s", r)
	}
	d.say("  %-28s %-36s %s", "source folder", "destination folder", "messages")
	for _, f := range st.GetFolders() {
		p := f.GetProgress()
		d.say("  %-28s %-36s %d/%d", f.GetSourceName(), f.GetDestinationName(),
			p.GetMessagesCopied()+p.GetMessagesPresent(), p.GetMessagesTotal())
	}
	for _, m := range st.GetFailedMessages() {
		d.say("  refused: %s UID %d (%s): %s", m.GetFolder(), m.GetSourceUid(), size(m.GetSize()), m.GetReason())
	}
}

// printReport finds the report in the destination INBOX and prints it decoded.
func (d *demo) printReport(ctx context.Context, dst *mailServer) error {
	msgs, err := imaptest.ReadFolder(ctx, dst.acct, "INBOX")
	if err != nil {
		return fmt.Errorf("read the destination INBOX: %w", err)
	}
	for _, m := range msgs {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil || msg.Header.Get(mailcopy.ReportHeader) == "" {
			continue
		}
		var dec mime.WordDecoder
		subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			subject = msg.Header.Get("Subject")
		}
		for _, h := range []struct{ name, value string }{
			{"From", msg.Header.Get("From")}, {"To", msg.Header.Get("To")},
			{"Date", msg.Header.Get("Date")}, {"Subject", subject},
		} {
			d.say("  %s: %s", h.name, h.value)
		}
		body := msg.Body
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		text, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("read the report: %w", err)
		}
		d.say("")
		for line := range strings.Lines(strings.ReplaceAll(string(text), "\r\n", "\n")) {
			d.say("  | %s", strings.TrimRight(line, "\n"))
		}
		return nil
	}
	return errors.New("no report in the destination INBOX")
}
