// Package nettest holds network helpers for tests.
package nettest

import (
	"net"
	"testing"
)

// ClosedAddr is a loopback address nothing listens on: a dial to it is
// refused (until something else takes the port, which the kernel avoids
// handing out again at once).
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
