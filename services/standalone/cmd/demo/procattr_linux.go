package main

import "syscall"

// childAttr puts the service in a process group of its own, so that a Ctrl-C in the
// terminal reaches the demo only, which then stops the service with one SIGTERM (a
// second signal would cut its shutdown short); and has the service stopped should the
// demo die without stopping it (a closed pipe, a kill).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
