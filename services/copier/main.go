// Command imapcopy-copier is the copier service. Its default command, `worker`,
// pulls sync tasks from the JetStream work queue and copies them (package
// syncworker; see README.md). `copy` copies one mailbox from the command line
// (how an operator migrates an account by hand, and how the benchmark drives the
// engine).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal cancels the copy (it stops cleanly and reports);
		// a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var quiet *exitError
	if err != nil && !(errors.As(err, &quiet) && quiet.quiet) {
		fmt.Fprintln(os.Stderr, "imapcopy-copier:", err)
	}
	os.Exit(exitCode(err))
}
