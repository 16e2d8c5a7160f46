//go:build !linux

package main

import "syscall"

// childAttr puts the service in a process group of its own, so that a Ctrl-C in the
// terminal reaches the demo only, which then stops the service with one SIGTERM.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
