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
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a graceful shutdown; a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imapcopy:", err)
		os.Exit(1)
	}
}
