// Command imapcopy-api is the api service: the gRPC SyncService that control panels
// call to test accounts, start syncs and follow them (package syncapi), with the
// status and lock in Redis (or JetStream KV) and the tasks on the JetStream work queue.
// Configuration comes from flags and IMAPCOPY_* environment variables: see README.md
// or run imapcopy-api -h.
package main

import (
	"context"
	"os"

	"imapcopy.dev/pkg/procmain"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	procmain.Main("imapcopy-api", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stderr) })
}
