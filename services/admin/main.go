// Command imapcopy-admin is the operator's tool for many syncs at once. Today it has
// one command, start: it starts the syncs of a batch file (a CSV of accounts) through
// the api's gRPC StartSync, a row at a time per source server, and prints one result
// per row. See README.md or run imapcopy-admin -h.
package main

import (
	"context"
	"os"

	"imapcopy.dev/pkg/procmain"
)

func main() {
	procmain.Main("imapcopy-admin", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}
