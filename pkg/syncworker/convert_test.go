package syncworker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func validTask() *imapcopyv1.SyncTask {
	return &imapcopyv1.SyncTask{
		TaskId:      "t1",
		SourceEmail: "alice@old.example",
		Source: &imapcopyv1.Endpoint{Provider: "gmail", Login: "alice@old.example", Host: "imap.old.example", Port: 993,
			Security: imapcopyv1.Security_SECURITY_TLS, MaxConnections: 15},
		Destination: &imapcopyv1.Endpoint{Provider: "other", Login: "alice@new.example", Host: "imap.new.example", Port: 143,
			Security: imapcopyv1.Security_SECURITY_STARTTLS, InsecureSkipVerify: true},
		Options:   &imapcopyv1.SyncOptions{},
		Sealed:    &imapcopyv1.SealedSecrets{KeyId: "k1"},
		LockToken: "token",
	}
}

func TestCheckEndpoints(t *testing.T) {
	tests := []struct {
		name   string
		change func(*imapcopyv1.SyncTask)
		plain  bool
		want   string // "" for valid
	}{
		{"valid", func(*imapcopyv1.SyncTask) {}, false, ""},
		{"no source", func(t *imapcopyv1.SyncTask) { t.Source = nil }, false, "no source account"},
		{"no destination host", func(t *imapcopyv1.SyncTask) { t.Destination.Host = "" }, false, "destination account has no valid server address"},
		{"port out of range", func(t *imapcopyv1.SyncTask) { t.Source.Port = 70000 }, false, "source account has no valid server address"},
		{"no login", func(t *imapcopyv1.SyncTask) { t.Destination.Login = "" }, false, "destination account has no login"},
		{"no security", func(t *imapcopyv1.SyncTask) { t.Source.Security = 0 }, false, "no connection security"},
		{"plaintext refused", func(t *imapcopyv1.SyncTask) { t.Source.Security = imapcopyv1.Security_SECURITY_PLAINTEXT }, false, "without encryption"},
		{"plaintext allowed", func(t *imapcopyv1.SyncTask) { t.Source.Security = imapcopyv1.Security_SECURITY_PLAINTEXT }, true, ""},
		{"no secrets", func(t *imapcopyv1.SyncTask) { t.Sealed = nil }, false, "no credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := validTask()
			tt.change(task)
			err := checkEndpoints(task, tt.plain)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkEndpoints() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkEndpoints() = %v, want an error containing %q", err, tt.want)
			case err != nil && classify(err) != classPermanent:
				t.Errorf("classify(checkEndpoints()) = %v, want permanent", classify(err))
			}
		})
	}
}

func TestCopyConfig(t *testing.T) {
	since := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	task := validTask()
	task.Options = &imapcopyv1.SyncOptions{
		IncludeFolders: []string{"INBOX*"}, ExcludeFolders: []string{"Junk"},
		MaxMessageSize: 25 << 20, Since: timestamppb.New(since), DryRun: true, NoReport: true,
		MaxConnections: 6, IncludeGmailViews: true,
	}
	secrets := &imapcopyv1.TaskSecrets{SourcePassword: "s3cret", DestinationOauth2AccessToken: "tok"}
	got, err := copyConfig(task, secrets, Config{Connections: 4})
	if err != nil {
		t.Fatal(err)
	}
	wantSrc := imapconn.Account{Host: "imap.old.example", Port: 993, Security: imapconn.SecurityTLS, Login: "alice@old.example", Password: "s3cret"}
	wantDst := imapconn.Account{Host: "imap.new.example", Port: 143, Security: imapconn.SecurityStartTLS, Login: "alice@new.example", OAuth2Token: "tok", InsecureSkipVerify: true}
	if got.Source != wantSrc {
		t.Errorf("Source = %v, want %v", got.Source, wantSrc)
	}
	if got.Destination != wantDst {
		t.Errorf("Destination = %v, want %v", got.Destination, wantDst)
	}
	want := mailcopy.Config{
		Connections: 6, Include: []string{"INBOX*"}, Exclude: []string{"Junk"}, MaxMessageSize: 25 << 20,
		Since: since, Provider: "gmail", DryRun: true, NoReport: true, IncludeGmailViews: true, Reached: true,
	}
	if got.Connections != want.Connections || got.MaxMessageSize != want.MaxMessageSize || !got.Since.Equal(want.Since) ||
		got.Provider != want.Provider || got.DryRun != want.DryRun || got.NoReport != want.NoReport ||
		got.IncludeGmailViews != want.IncludeGmailViews || got.Reached != want.Reached || strings.Join(got.Include, ",") != "INBOX*" || strings.Join(got.Exclude, ",") != "Junk" {
		t.Errorf("copyConfig() = %+v, want %+v", got, want)
	}

	// The presets' handling: Gmail's back-off for a Gmail source; from a built-in
	// catalogue, Microsoft 365's back-off and no MULTIAPPEND to it.
	if got.ThrottleBackoff != 0 || got.NoMultiappend {
		t.Errorf("without a catalogue: back-off %v, no MULTIAPPEND %v; want none", got.ThrottleBackoff, got.NoMultiappend)
	}
	got, err = copyConfig(task, secrets, Config{Providers: providers.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	if got.ThrottleBackoff != 5*time.Minute || got.NoMultiappend {
		t.Errorf("gmail to other: back-off %v, no MULTIAPPEND %v; want 5m0s, false", got.ThrottleBackoff, got.NoMultiappend)
	}
	m365 := proto.Clone(task).(*imapcopyv1.SyncTask)
	m365.Destination.Provider = "microsoft365"
	got, err = copyConfig(m365, secrets, Config{Providers: providers.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	if got.ThrottleBackoff != 5*time.Minute || !got.NoMultiappend {
		t.Errorf("gmail to microsoft365: back-off %v, no MULTIAPPEND %v; want 5m0s, true", got.ThrottleBackoff, got.NoMultiappend)
	}

	noSecret := proto.Clone(secrets).(*imapcopyv1.TaskSecrets)
	noSecret.SourcePassword = ""
	if _, err := copyConfig(task, noSecret, Config{}); err == nil || classify(err) != classPermanent {
		t.Errorf("copyConfig() without a source secret = %v, want a permanent error", err)
	}
}

func TestConnections(t *testing.T) {
	tests := []struct {
		option, src, dst uint32
		want             int
	}{
		{0, 0, 0, 4},
		{0, 15, 0, 4},
		{0, 15, 2, 2},
		{0, 3, 10, 3},
		{6, 15, 10, 6},
		{6, 15, 5, 5},
		{20, 15, 0, 15},
	}
	for _, tt := range tests {
		task := validTask()
		task.Options.MaxConnections, task.Source.MaxConnections, task.Destination.MaxConnections = tt.option, tt.src, tt.dst
		if got := connections(task, 4); got != tt.want {
			t.Errorf("connections(option %d, source %d, destination %d) = %d, want %d", tt.option, tt.src, tt.dst, got, tt.want)
		}
	}
}

func TestApplyResult(t *testing.T) {
	res := &mailcopy.Result{
		Totals: mailcopy.Counts{Total: 3 + maxFailedInStatus + 2, Copied: 3, Failed: maxFailedInStatus + 2, Bytes: 300, TotalBytes: 1000},
		Folders: []mailcopy.FolderResult{
			{Source: "INBOX", Destination: "INBOX", Counts: mailcopy.Counts{Total: 3, Copied: 3}},
			{Source: "Broken", Destination: "Broken", Error: "cannot open"},
		},
		FolderSkips: []mailcopy.FolderSkip{{Source: "[Gmail]/All Mail", Reason: "gmail view"}},
		Renames:     []mailcopy.Rename{{Source: "a/b", Destination: "a_b", Reason: "separator"}},
	}
	for range maxFailedInStatus + 2 {
		res.Failures = append(res.Failures, mailcopy.MessageIssue{Folder: "INBOX", UID: 9, Size: 10, Reason: "too big"})
	}
	st := &imapcopyv1.SyncStatus{}
	applyResult(st, res)
	if st.GetTotal().GetMessagesCopied() != 3 || st.GetTotal().GetBytesCopied() != 300 || st.GetTotal().GetBytesTotal() != 1000 {
		t.Errorf("total = %v, want 3 copied, 300 bytes of 1000", st.GetTotal())
	}
	states := []imapcopyv1.FolderState{}
	for _, f := range st.GetFolders() {
		states = append(states, f.GetState())
	}
	wantStates := []imapcopyv1.FolderState{imapcopyv1.FolderState_FOLDER_STATE_DONE, imapcopyv1.FolderState_FOLDER_STATE_FAILED, imapcopyv1.FolderState_FOLDER_STATE_SKIPPED}
	if len(states) != len(wantStates) || states[0] != wantStates[0] || states[1] != wantStates[1] || states[2] != wantStates[2] {
		t.Errorf("folder states = %v, want %v", states, wantStates)
	}
	if n := len(st.GetFailedMessages()); n != maxFailedInStatus+1 {
		t.Errorf("failed messages listed = %d, want %d (capped, with a last line saying how many more)", n, maxFailedInStatus+1)
	}
	if last := st.GetFailedMessages()[maxFailedInStatus].GetReason(); !strings.Contains(last, "2 more") {
		t.Errorf("last failed message = %q, want it to say 2 more", last)
	}
	if len(st.GetRenames()) != 1 {
		t.Errorf("renames = %v, want 1", st.GetRenames())
	}
}

// A source with a hundred thousand folders (a hostile server, or a real archive) made
// a status too large to read: the lists are capped, failed folders kept first, and
// the status of 100,000 folders stays under 1 MB.
func TestApplyResultManyFolders(t *testing.T) {
	const n = 100_000
	res := &mailcopy.Result{}
	for i := range n {
		f := mailcopy.FolderResult{Source: fmt.Sprintf("Archive/%06d", i), Destination: fmt.Sprintf("Archive/%06d", i)}
		if i%10_000 == 9_999 {
			f.Error = "cannot open"
		}
		res.Folders = append(res.Folders, f)
		res.Renames = append(res.Renames, mailcopy.Rename{Source: f.Source + "/x", Destination: f.Source + "_x", Reason: "separator"})
	}
	st := &imapcopyv1.SyncStatus{}
	applyResult(st, res)
	if len(st.GetFolders()) != maxFoldersInStatus || len(st.GetRenames()) != maxRenamesInStatus {
		t.Fatalf("%d folders and %d renames in the status, want %d and %d", len(st.GetFolders()), len(st.GetRenames()), maxFoldersInStatus, maxRenamesInStatus)
	}
	for i, f := range st.GetFolders()[:10] {
		if f.GetState() != imapcopyv1.FolderState_FOLDER_STATE_FAILED {
			t.Errorf("folder %d of the status is %v, want the 10 failed ones first", i, f.GetState())
		}
	}
	last := st.GetFolders()[maxFoldersInStatus-1].GetReason()
	if want := fmt.Sprintf("and %d more folders", n-maxFoldersInStatus+1); !strings.Contains(last, want) {
		t.Errorf("last folder entry %q, want %q", last, want)
	}
	if size := proto.Size(st); size > 1<<20 {
		t.Errorf("status of %d folders is %d bytes, want under 1 MiB", n, size)
	}
}

func TestTaskErrorUnwrap(t *testing.T) {
	inner := errors.New("inner")
	err := temporary("store down", inner)
	if !errors.Is(err, inner) || err.Error() != "store down: inner" {
		t.Errorf("temporary() = %q, want it to wrap %q", err, inner)
	}
}

// TestApplyProgressThrottled: the status says until when a server throttles the
// copy, and stops saying it once the copy goes on.
func TestApplyProgressThrottled(t *testing.T) {
	st := &imapcopyv1.SyncStatus{Message: "copying (attempt 2): resuming where the last attempt stopped"}
	base := st.Message
	until := time.Date(2026, 12, 5, 17, 30, 5, 0, time.UTC)
	applyProgress(st, &mailcopy.Progress{ThrottledUntil: until})
	if want := base + "; the server throttles the copy: waiting until 2026-12-05T17:30:05Z"; st.Message != want {
		t.Errorf("throttled: message %q, want %q", st.Message, want)
	}
	if got := st.GetThrottledUntil().AsTime(); !got.Equal(until) {
		t.Errorf("throttled_until = %v, want %v", got, until)
	}
	applyProgress(st, &mailcopy.Progress{ThrottledUntil: until.Add(time.Minute)})
	if want := base + "; the server throttles the copy: waiting until 2026-12-05T17:31:05Z"; st.Message != want {
		t.Errorf("throttled again: message %q, want %q", st.Message, want)
	}
	applyProgress(st, &mailcopy.Progress{})
	if st.Message != base || st.GetThrottledUntil() != nil {
		t.Errorf("after the wait: message %q, throttled_until %v; want %q and none", st.Message, st.GetThrottledUntil(), base)
	}
}

func TestStallNote(t *testing.T) {
	for _, tc := range []struct {
		stalled, after time.Duration
		want           string
	}{
		{59 * time.Second, time.Minute, ""},
		{2500 * time.Millisecond, 2 * time.Second, "; no progress for 2 s: "},
		{time.Minute + 19*time.Second, time.Minute, "; no progress for 70 s: "},
	} {
		got := stallNote(tc.stalled, tc.after)
		if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) {
			t.Errorf("stallNote(%v, %v) = %q, want %q...", tc.stalled, tc.after, got, tc.want)
		}
	}
	st := &imapcopyv1.SyncStatus{Message: "copying"}
	setStallNote(st, stallNote(time.Minute, time.Minute))
	setStallNote(st, stallNote(2*time.Minute, time.Minute))
	if !strings.HasPrefix(st.Message, "copying; no progress for 120 s: ") || strings.Count(st.Message, "no progress") != 1 {
		t.Errorf("message after two notes = %q, want one note, the last", st.Message)
	}
	setStallNote(st, "")
	if st.Message != "copying" {
		t.Errorf("message after the stall = %q, want %q", st.Message, "copying")
	}
}
