package syncapi

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Prober tests IMAP accounts for real: it connects (through the dialer of its
// options, the network policy's in production), negotiates TLS, logs in and, when
// asked, describes the mailbox. It never writes to an account: folders are only
// listed and counted, never selected for writing.
type Prober struct {
	opts imapconn.Options
	log  *slog.Logger
}

// NewProber returns a prober that dials with opts.
func NewProber(opts imapconn.Options, logger *slog.Logger) *Prober {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Prober{opts: opts, log: logger}
}

type imapClient = *imapclient.Client

// metadataSumLimit bounds the messages whose sizes are fetched one by one to total a
// mailbox when the server lacks STATUS=SIZE; beyond it total_bytes stays 0 (unknown).
const metadataSumLimit = 20_000

// closedRetryDelay is the pause before the second try of a test whose
// connection the server closed without an answer.
const closedRetryDelay = 500 * time.Millisecond

// Probe tests acct. A failed test is an answer (OK false, with the reason and a
// message a person can act on), not an error. With details, the answer also carries
// the namespace, the folders and their counts; a destination's quota is always asked
// for, since a full destination fails the test.
func (p *Prober) Probe(ctx context.Context, acct imapconn.Account, role imapcopyv1.AccountRole, details bool) *imapcopyv1.TestAccountResponse {
	c, err := imapconn.Dial(ctx, acct, p.opts)
	if err != nil && imapconn.KindOf(err) == imapconn.KindClosed && ctx.Err() == nil {
		// The server hung up without an answer: once more, a moment later. A
		// server's login process that crashed takes its pending logins with it
		// (Dovecot 2.3's imap-login killed by signal 6 under load did, in the
		// fleet test), and a customer would be told the test failed.
		select {
		case <-ctx.Done():
		case <-time.After(closedRetryDelay):
			c, err = imapconn.Dial(ctx, acct, p.opts)
		}
	}
	if err != nil {
		return failed(err, acct)
	}
	defer c.Close()

	resp := &imapcopyv1.TestAccountResponse{Ok: true}
	caps := c.Caps()
	for capability := range caps {
		resp.Capabilities = append(resp.Capabilities, string(capability))
	}
	slices.Sort(resp.Capabilities)
	cl := c.IMAP()

	if caps.Has(imap.CapID) {
		if id, err := cl.ID(&imap.IDData{Name: "imapcopy"}).Wait(); err == nil && id != nil {
			resp.ServerId = idMap(id)
		}
	}
	if role == imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION || details {
		if caps.Has(imap.CapQuota) {
			resp.Quota = quota(cl)
		}
	}
	if details {
		if err := describe(ctx, cl, caps, resp); err != nil {
			// The login worked: report what is known, and why the rest is missing.
			p.log.InfoContext(ctx, "account_describe_failed", "host", acct.Host, "error", acct.Redact(err.Error()))
		}
	}
	if role == imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION && resp.Quota != nil &&
		resp.Quota.LimitBytes > 0 && resp.Quota.UsedBytes >= resp.Quota.LimitBytes {
		resp.Ok = false
		resp.Failure = imapcopyv1.TestFailure_TEST_FAILURE_OVER_QUOTA
		resp.Message = fmt.Sprintf("the destination mailbox is full (%d of %d bytes used): free some space or raise its quota", resp.Quota.UsedBytes, resp.Quota.LimitBytes)
		_ = c.Logout()
		return resp
	}
	resp.Message = "login succeeded"
	_ = c.Logout()
	return resp
}

func idMap(id *imap.IDData) map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{
		"name": id.Name, "version": id.Version, "os": id.OS, "os-version": id.OSVersion,
		"vendor": id.Vendor, "support-url": id.SupportURL, "address": id.Address,
		"date": id.Date, "command": id.Command, "arguments": id.Arguments, "environment": id.Environment,
	} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// quota asks for the INBOX's storage quota (RFC 9208 counts STORAGE in KiB).
func quota(cl imapClient) *imapcopyv1.Quota {
	data, err := cl.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		return nil
	}
	for _, q := range data {
		if res, ok := q.Resources[imap.QuotaResourceStorage]; ok {
			return &imapcopyv1.Quota{UsedBytes: uint64(max(res.Usage, 0)) * 1024, LimitBytes: uint64(max(res.Limit, 0)) * 1024}
		}
	}
	return nil
}

// describe fills the namespace, folders, special-use folders and counts.
func describe(ctx context.Context, cl imapClient, caps imap.CapSet, resp *imapcopyv1.TestAccountResponse) error {
	if caps.Has(imap.CapNamespace) {
		if ns, err := cl.Namespace().Wait(); err == nil && ns != nil && len(ns.Personal) > 0 {
			resp.NamespacePrefix = ns.Personal[0].Prefix
			if ns.Personal[0].Delim != 0 {
				resp.Separator = string(ns.Personal[0].Delim)
			}
		}
	}
	sizes := caps.Has(imap.CapStatusSize) || caps.Has(imap.CapIMAP4rev2)
	statusOpts := &imap.StatusOptions{NumMessages: true, Size: sizes}
	listOpts := &imap.ListOptions{ReturnSpecialUse: caps.Has(imap.CapSpecialUse)}
	listStatus := caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2)
	if listStatus {
		listOpts.ReturnStatus = statusOpts
	}
	folders, err := mailcopy.CollectList(cl, cl.List("", "*", listOpts))
	if err != nil {
		return fmt.Errorf("list folders: %w", err)
	}
	var unsized []string
	for _, f := range folders {
		if resp.Separator == "" && f.Delim != 0 {
			resp.Separator = string(f.Delim)
		}
		if hasAttr(f.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		resp.FolderCount++
		for _, attr := range f.Attrs {
			if slices.ContainsFunc(specialUse, func(s imap.MailboxAttr) bool { return strings.EqualFold(string(s), string(attr)) }) {
				resp.SpecialUseFolders = append(resp.SpecialUseFolders, &imapcopyv1.SpecialUseFolder{Name: f.Mailbox, Attribute: string(attr)})
			}
		}
		if hasAttr(f.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		st := f.Status
		if st == nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if st, err = cl.Status(f.Mailbox, statusOpts).Wait(); err != nil {
				continue // a folder that vanished or that we may not read
			}
		}
		if st.NumMessages != nil {
			resp.MessageCount += uint64(*st.NumMessages)
		}
		if st.Size != nil {
			resp.TotalBytes += uint64(max(*st.Size, 0))
		} else if st.NumMessages != nil && *st.NumMessages > 0 {
			unsized = append(unsized, f.Mailbox)
		}
	}
	if len(unsized) > 0 && resp.MessageCount <= metadataSumLimit {
		for _, name := range unsized {
			n, err := sumSizes(cl, name)
			if err != nil {
				return fmt.Errorf("sizes of %q: %w", name, err)
			}
			resp.TotalBytes += n
		}
	}
	return nil
}

// specialUse are the RFC 6154 attributes, and Gmail's \Important.
var specialUse = []imap.MailboxAttr{
	imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts, imap.MailboxAttrFlagged,
	imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash, `\Important`,
}

// sumSizes totals the RFC822.SIZE of a folder's messages, opened read-only.
func sumSizes(cl imapClient, name string) (uint64, error) {
	if _, err := cl.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := cl.Fetch(all, &imap.FetchOptions{RFC822Size: true}).Collect()
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, m := range msgs {
		total += uint64(max(m.RFC822Size, 0))
	}
	return total, nil
}

// failed turns a dial error into the test's answer.
func failed(err error, acct imapconn.Account) *imapcopyv1.TestAccountResponse {
	detail := acct.Redact(err.Error())
	var failure imapcopyv1.TestFailure
	var msg string
	switch imapconn.KindOf(err) {
	case imapconn.KindAuth:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_AUTH_FAILED
		msg = "the server refused the login or password: check them (providers such as Gmail, Yahoo and AOL require an app password)"
	case imapconn.KindTLS:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_TLS_FAILED
		msg = "TLS failed: check the host name and security; a server with a self-signed certificate needs insecure_skip_verify"
	case imapconn.KindUnreachable:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_UNREACHABLE
		msg = "the server cannot be reached: check the host name and port"
	case imapconn.KindTimeout:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_TIMEOUT
		msg = "the server did not answer in time: check the host and port, or try again later"
	case imapconn.KindNotIMAP:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_NOT_IMAP
		msg = "something answered that is not an IMAP server: check the host, port and security"
	case imapconn.KindStartTLSUnavailable:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_STARTTLS_UNAVAILABLE
		msg = "the server does not offer STARTTLS: use SECURITY_TLS (usually port 993)"
	case imapconn.KindRefusedByPolicy:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_REFUSED_BY_POLICY
		msg = "the operator's network policy refuses this server"
	default:
		failure = imapcopyv1.TestFailure_TEST_FAILURE_PROTOCOL_ERROR
		msg = "the connection failed"
	}
	return &imapcopyv1.TestAccountResponse{Failure: failure, Message: msg + " (" + detail + ")"}
}

// hasAttr reports whether attrs holds attr; attributes are case-insensitive.
func hasAttr(attrs []imap.MailboxAttr, attr imap.MailboxAttr) bool {
	return slices.ContainsFunc(attrs, func(a imap.MailboxAttr) bool { return strings.EqualFold(string(a), string(attr)) })
}
