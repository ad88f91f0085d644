//go:build linux

package api_test

import "syscall"

// dieWithTest makes a server a test starts die with the test process, even when that is
// killed (a timeout, an interrupt) before its cleanups can stop the server.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
