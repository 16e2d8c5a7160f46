// Command imapcopy-api is the api service: the gRPC SyncService that control panels
// call to test accounts, start syncs and follow them (package syncapi), with the
// status and lock in Redis (or JetStream KV) and the tasks on the JetStream work queue.
// Configuration comes from flags and IMAPCOPY_* environment variables: see README.md
// or run imapcopy-api -h.
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
		fmt.Fprintln(os.Stderr, "imapcopy-api:", err)
		os.Exit(1)
	}
}
