package syncapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// msgInterrupted is the reason of a start that never queued its task.
const msgInterrupted = "the start was interrupted before the task was queued (the api stopped): start the sync again"

// unstick settles a status left QUEUED by a start that never finished: StartSync
// writes QUEUED, then publishes, then extends the lock to the queued lifetime, and
// an api killed between the first two steps leaves a QUEUED status with no task
// behind it. Such a status is recognised by its lock: once the start's short lock
// has run out, a QUEUED sync whose lock is free has no task waiting for it (a queued
// task's lock lives as long as the queue keeps the task, and a copier holds it while
// it runs). It is then recorded FAILED, under the lock, so that every reader (Get,
// Watch, List, Retry) sees the same. Any store error leaves st as it is.
func (s *Service) unstick(ctx context.Context, source string, st *imapcopyv1.SyncStatus) *imapcopyv1.SyncStatus {
	if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED || s.clock.Now().Sub(st.GetCreatedAt().AsTime()) < s.startLockTTL() {
		return st
	}
	if locked, err := s.store.Locked(ctx, source); err != nil || locked {
		return st
	}
	token, err := s.store.Acquire(ctx, source, time.Minute)
	if err != nil {
		return st // taken since: a new start
	}
	defer func() {
		if err := s.store.Release(context.WithoutCancel(ctx), source, token); err != nil {
			s.log.WarnContext(ctx, "lock_release_failed", "source", source, "error", err.Error())
		}
	}()
	// The lock is ours: no start can have replaced the status since it was read, but
	// read it again so that a status written between the read and the lock is kept.
	cur, err := s.store.Get(ctx, source)
	if err != nil || cur.GetTaskId() != st.GetTaskId() || cur.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
		return st
	}
	failed := failedStatus(cur, msgInterrupted)
	failed.FinishedAt = timestamppb.New(s.clock.Now())
	if err := s.store.Put(ctx, source, token, failed); err != nil {
		return st
	}
	s.log.WarnContext(ctx, "interrupted_start_settled", "task_id", st.GetTaskId(), "source", source)
	return failed
}
