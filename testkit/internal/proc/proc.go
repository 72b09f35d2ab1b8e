// Package proc stops the server processes that testkit's launchers start.
package proc

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Stop sends p SIGTERM and, if it has not exited (exited closed) within
// timeout, SIGKILL; it returns once p has exited. name labels the messages,
// e.g. "kafkatest: broker"; logf receives the notes on the way (a SIGKILL
// needed), and the error says why p could not be stopped.
func Stop(logf func(format string, args ...any), name string, p *os.Process, exited <-chan struct{}, timeout time.Duration) error {
	select {
	case <-exited:
		return nil
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		logf("%s: sigterm pid %d: %v", name, p.Pid, err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		logf("%s: pid %d still running %s after SIGTERM; sending SIGKILL", name, p.Pid, timeout)
		if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("%s: kill pid %d: %w", name, p.Pid, err)
		}
		<-exited
	}
	return nil
}

// StopFunc returns a func that stops p (see Stop) once, and reports a
// failure to stop it through errorf.
func StopFunc(logf, errorf func(format string, args ...any), name string, p *os.Process, exited <-chan struct{}, timeout time.Duration) func() {
	return func() {
		if err := Stop(logf, name, p, exited, timeout); err != nil {
			errorf("%v", err)
		}
	}
}
