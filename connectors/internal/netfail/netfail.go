// Package netfail names the kinds of network failure that a connector's
// client meets while its server is away: the reasons its Unavailable
// function gives, fit for /readyz (no address, no credential).
package netfail

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Reason names the network failure in err in a few words: "timeout" (a
// deadline, or a read or write that timed out), "connection refused",
// "connection closed" (reset, broken pipe, end of stream) or "network
// error" (any other failed dial, read or write); ok is false when err is
// none of these.
func Reason(err error) (reason string, ok bool) {
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return "timeout", true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed", true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return "network error", true
	}
	return "", false
}
