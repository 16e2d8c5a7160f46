// Package procmain is what every imapcopy binary's main does around its run, so that
// the binaries stop and exit alike: the first SIGINT or SIGTERM ends run's context
// (a graceful shutdown: the binary drains and returns), a second one kills the
// process at once. An error is printed after the binary's name and exits 1, or with
// the code of its ExitCode method; -h (flag.ErrHelp) exits 0, and an error whose
// Quiet method says so is not printed (it was shown already).
package procmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run and exits the process.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // from now on, a signal kills at once
	}()
	err := run(ctx)
	stop()
	os.Exit(Exit(os.Stderr, name, err))
}

// Exit prints err for the binary name to w as Main does and returns the exit code.
func Exit(w io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var quiet interface{ Quiet() bool }
	if !errors.As(err, &quiet) || !quiet.Quiet() {
		fmt.Fprintln(w, name+":", err)
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}
