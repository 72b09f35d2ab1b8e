//go:build !linux

package kafkatest

import "syscall"

// sysProcAttr returns nil: only Linux can tie the broker's life to the test process.
func sysProcAttr() *syscall.SysProcAttr { return nil }
