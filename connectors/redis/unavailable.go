package redis

import (
	"context"
	"errors"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/internal/netfail"
)

// MarkErrors adds a hook to rdb that marks the errors of its calls that
// are not answers of the server (a refused or broken connection, a
// timeout, no pooled connection) as Redis's, so that Unavailable tells
// them apart from the same kinds of error from another dependency (a
// broker's timeout is not a Redis outage). Answers of the server (error
// replies, redis.Nil) are left as they are. Marking a client twice marks
// its errors once. New marks the clients it builds; a caller that brings
// its own client marks it before handing it to code that classifies its
// errors.
func MarkErrors(rdb goredis.UniversalClient) { rdb.AddHook(errorMarker{}) }

// callError is an error of a call on a marked client that the server did
// not answer (see MarkErrors). Its text is the call's error's.
type callError struct{ err error }

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// markCall returns err marked as a Redis call's, when it is not an answer
// of the server or marked already.
func markCall(err error) error {
	var rerr goredis.Error
	var marked *callError
	if err == nil || errors.As(err, &rerr) || errors.As(err, &marked) {
		return err // redis.Nil is an Error too
	}
	return &callError{err}
}

// errorMarker is MarkErrors' hook.
type errorMarker struct{}

func (errorMarker) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (errorMarker) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if marked := markCall(err); marked != err {
			cmd.SetErr(marked)
			return marked
		}
		return err
	}
}

func (errorMarker) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if cerr := cmd.Err(); cerr != nil {
				cmd.SetErr(markCall(cerr))
			}
		}
		return markCall(err)
	}
}

// Unavailable reports whether err, from a Redis call, means that Redis is
// unavailable for now and the call would work once it is back: the
// connection was refused, reset or closed, a read or write timed out (a
// hung server), no pooled connection came in time, or the server answered
// that it is loading its dataset, busy with a script, failing over
// (read-only replica, primary down, cluster down, try again), out of
// memory or out of client slots. reason names the kind in a few words,
// without an address or a credential (it is fit for /readyz).
//
// The kinds the server does not answer count only on errors of a client
// whose errors are marked (New's clients, MarkErrors): the same network
// error or deadline from another dependency is not Redis's.
//
// Errors of the request itself are not: a wrong password or a denied
// command (WRONGPASS, NOAUTH, NOPERM), a wrong type, a script error. They
// do not go away by waiting. A canceled context (shutdown) and a closed
// client are not either.
func Unavailable(err error) (reason string, ok bool) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, goredis.ErrClosed) {
		return "", false
	}
	if goredis.IsAuthError(err) || goredis.IsPermissionError(err) {
		return "", false
	}
	for _, s := range []struct{ prefix, reason string }{
		{"LOADING ", "loading its dataset"},
		{"BUSY ", "busy running a script"},
		{"READONLY ", "read-only (failing over)"},
		{"MASTERDOWN ", "primary down"},
		{"CLUSTERDOWN ", "cluster down"},
		{"TRYAGAIN ", "cluster resharding"},
		{"NOREPLICAS ", "not enough replicas"},
		{"OOM ", "out of memory"},
		{"ERR max number of clients reached", "out of client connections"},
	} {
		if hasServerPrefix(err, s.prefix) || scriptCallFailedWith(err, s.prefix) {
			return s.reason, true
		}
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		return "", false // any other answer of the server is about the request
	}
	var call *callError
	if !errors.As(err, &call) {
		return "", false // not a Redis call's
	}
	if errors.Is(err, goredis.ErrPoolTimeout) {
		return "no connection in time", true
	}
	return netfail.Reason(err)
}

// scriptCallFailedWith reports whether err is a script error reply that
// wraps a redis.call answered with prefix. Real Redis refuses the EVAL
// itself while loading or busy, and passes an inner OOM on with its own
// code; miniredis (the embedded Redis) instead runs a script that was
// already in flight when it started answering LOADING and wraps the inner
// answer: "ERR Error compiling script (new function): :45: LOADING …".
func scriptCallFailedWith(err error, prefix string) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	if !strings.HasPrefix(msg, "ERR Error compiling script") && !strings.HasPrefix(msg, "ERR Error running script") {
		return false
	}
	return strings.Contains(msg, ": "+prefix)
}

// hasServerPrefix reports whether err is a server answer (a Redis error
// reply) that starts with prefix.
func hasServerPrefix(err error, prefix string) bool {
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		return strings.HasPrefix(rerr.Error(), prefix)
	}
	return false
}
