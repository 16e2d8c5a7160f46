// Command imapcopy is imapcopy in one process, for a single machine with nothing else
// installed: an embedded NATS server with JetStream on local disk (the work queue, and
// the status and lock in key-value buckets), the api (the gRPC SyncService of package
// syncapi), the copier workers (package syncworker) and the admin HTTP server. Queued
// tasks and statuses live in the data directory and survive a restart; a task that
// was running when the process died resumes.
//
// Configuration comes from flags and IMAPCOPY_* environment variables: see README.md
// or run imapcopy -h.
package main

import (
	"context"
	"os"

	"imapcopy.dev/pkg/procmain"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	procmain.Main("imapcopy", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stderr) })
}
