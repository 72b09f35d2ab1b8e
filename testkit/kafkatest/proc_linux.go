package kafkatest

import "syscall"

// sysProcAttr makes the kernel kill the broker when the test process dies, so an
// interrupted test run leaves no broker behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
