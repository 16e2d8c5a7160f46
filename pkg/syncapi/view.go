package syncapi

import (
	"context"

	"google.golang.org/protobuf/proto"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Who sees what.
//
//   - A caller authenticated by a token or a certificate sees the syncs it started
//     in full, and may cancel them; an admin token sees and cancels every sync.
//   - With open access (no tokens, no client certificates: a loopback deployment),
//     every gRPC caller sees and cancels every sync.
//   - An anonymous caller of the public page (HTTP, page mode "public", no
//     credentials) may start a sync and look up any address, but sees only the
//     state, its sentence, the totals, the reasons and the times: not the
//     destination, the folders or the refused messages. It may cancel a sync only
//     with the cancel secret StartSync returned to it.
//
// A cancel secret is a tag of the task id under the operator's task key: nothing
// about it is stored, and it is shown once, to whoever started the sync.

// public reports whether the caller of ctx is an anonymous caller of the public page.
func public(ctx context.Context) bool {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c.public
}

// view is the status as the caller of ctx may see it: reduced for an anonymous
// caller of the public page.
func view(ctx context.Context, st *imapcopyv1.SyncStatus) *imapcopyv1.SyncStatus {
	if st == nil {
		return nil
	}
	if public(ctx) {
		return &imapcopyv1.SyncStatus{
			SourceEmail:    st.GetSourceEmail(),
			State:          st.GetState(),
			Message:        st.GetMessage(),
			Total:          st.GetTotal(),
			FailureReason:  st.GetFailureReason(),
			RetryReason:    st.GetRetryReason(),
			Attempt:        st.GetAttempt(),
			CreatedAt:      st.GetCreatedAt(),
			StartedAt:      st.GetStartedAt(),
			UpdatedAt:      st.GetUpdatedAt(),
			FinishedAt:     st.GetFinishedAt(),
			DryRun:         st.GetDryRun(),
			ThrottledUntil: st.GetThrottledUntil(),
		}
	}
	if len(st.GetCopyState()) > 0 { // the copiers', not the caller's
		st = proto.CloneOf(st)
		st.CopyState = nil
	}
	return st
}

// cancelPurpose is the Sealer tag purpose of cancel secrets: a sync's cancel secret
// is Tag(cancelPurpose, task id), so that nothing about it is stored.
const cancelPurpose = "cancel"

// mayCancel reports whether the caller of ctx may cancel st: whoever may read it in
// full, or anyone who holds its cancel secret.
func (s *Service) mayCancel(ctx context.Context, st *imapcopyv1.SyncStatus, secret string) bool {
	if secret != "" && st.GetTaskId() != "" && s.sealer.VerifyTag(cancelPurpose, st.GetTaskId(), secret) {
		return true
	}
	return !public(ctx) && mayAccess(ctx, st)
}
