package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/internal/netfail"
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
	}
	return netfail.Reason(err)
}
