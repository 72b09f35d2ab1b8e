package kafka

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Unavailable reports whether err, from a produce or a request to the
// brokers, means that the cluster is unavailable for now and the call
// would work once it is back: a record not delivered within its delivery
// timeout or retries, an answer Kafka calls retriable (no leader, not
// enough replicas, a coordinator loading or moving), a refused, reset or
// closed connection, or a deadline. reason names the kind in a few words,
// without an address (it is fit for /readyz).
//
// It does not tell a broker's network error from another dependency's:
// ask a dependency whose errors are marked (connectors/redis.Unavailable)
// first. Errors that do not go away by waiting are not unavailability: a
// record too large, a denied topic or a failed authentication, a fenced
// producer, a canceled context (shutdown), a closed client.
func Unavailable(err error) (reason string, ok bool) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return "", false
	}
	var kerrAnswer *kerr.Error
	var nerr net.Error
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "delivery timeout", true
	case errors.Is(err, kgo.ErrRecordRetries):
		return "produce retries exhausted", true
	case errors.As(err, &kerrAnswer):
		if kerrAnswer.Retriable {
			return kerrAnswer.Message, true
		}
		return "", false
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
