// Package proc stops the server processes that testkit's launchers start.
package proc

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// Stop sends p SIGTERM and, if it has not exited (exited closed) within
// timeout, SIGKILL; it returns once p has exited. name labels log lines,
// e.g. "kafkatest: broker".
func Stop(tb testing.TB, name string, p *os.Process, exited <-chan struct{}, timeout time.Duration) {
	select {
	case <-exited:
		return
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Logf("%s: sigterm pid %d: %v", name, p.Pid, err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		tb.Logf("%s: pid %d still running %s after SIGTERM; sending SIGKILL", name, p.Pid, timeout)
		if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			tb.Errorf("%s: kill pid %d: %v", name, p.Pid, err)
		}
		<-exited
	}
}
