// Command imapcopy-copier is the copier service. Its default command, `worker`,
// pulls sync tasks from the JetStream work queue and copies them (package
// syncworker; see README.md). `copy` copies one mailbox from the command line
// (how an operator migrates an account by hand, and how the benchmark drives the
// engine).
package main

import (
	"context"
	"os"

	"imapcopy.dev/pkg/procmain"
)

func main() {
	procmain.Main("imapcopy-copier", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr) })
}
