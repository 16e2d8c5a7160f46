package syncapi

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
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
	if s.abandoned(st) {
		return s.settleAbandoned(ctx, source, st)
	}
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

// abandoned tells a RUNNING status that no copier will end: its last delivery
// (Options.MaxDeliver) started and its status has not been written for
// RunningLive, so its copier is gone (a crash, an out-of-memory kill: one that
// happened on every delivery) and the queue will not deliver the task again. A
// live copier writes the status at least every lock refresh and holds the lock
// (settleAbandoned checks it).
func (s *Service) abandoned(st *imapcopyv1.SyncStatus) bool {
	return s.opts.MaxDeliver > 0 && st.GetState() == imapcopyv1.SyncState_SYNC_STATE_RUNNING &&
		int(st.GetAttempt()) >= s.opts.MaxDeliver && st.GetUpdatedAt() != nil &&
		s.clock.Now().Sub(st.GetUpdatedAt().AsTime()) >= s.opts.RunningLive
}

// settleAbandoned records an abandoned sync FAILED, under the lock, keeping its
// progress; as unstick does for a start that never queued its task.
func (s *Service) settleAbandoned(ctx context.Context, source string, st *imapcopyv1.SyncStatus) *imapcopyv1.SyncStatus {
	if locked, err := s.store.Locked(ctx, source); err != nil || locked {
		return st
	}
	token, err := s.store.Acquire(ctx, source, time.Minute)
	if err != nil {
		return st
	}
	defer func() {
		if err := s.store.Release(context.WithoutCancel(ctx), source, token); err != nil {
			s.log.WarnContext(ctx, "lock_release_failed", "source", source, "error", err.Error())
		}
	}()
	cur, err := s.store.Get(ctx, source)
	if err != nil || cur.GetTaskId() != st.GetTaskId() || !s.abandoned(cur) {
		return st
	}
	reason := fmt.Sprintf("the copier stopped during each of the %d attempts (it crashed or was killed) and no attempt is left: start the sync again; it copies only what is missing", cur.GetAttempt())
	failed := proto.Clone(cur).(*imapcopyv1.SyncStatus)
	failed.State = imapcopyv1.SyncState_SYNC_STATE_FAILED
	failed.Message, failed.FailureReason, failed.RetryReason = "the sync failed: "+reason, reason, ""
	failed.FinishedAt = timestamppb.New(s.clock.Now())
	if err := s.store.Put(ctx, source, token, failed); err != nil {
		return st
	}
	s.log.WarnContext(ctx, "abandoned_sync_settled", "task_id", st.GetTaskId(), "source", source, "attempt", cur.GetAttempt())
	return failed
}
