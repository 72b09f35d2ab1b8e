package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/driftline/driftline/connectors/internal/tlsfiles"
)

// DefaultCheckTimeout bounds Check when its context has no earlier deadline.
const DefaultCheckTimeout = 10 * time.Second

// Check tells whether clients built from c can work with the cluster, so
// that a process fails at start with a clear error instead of retrying in
// the background. It validates c, then connects to the seed brokers one at
// a time with c's TLS and SASL settings until one answers a metadata
// request, then connects to every broker that metadata lists (the
// addresses the brokers advertise, which the clients will dial). It takes
// at most DefaultCheckTimeout, or less if ctx ends sooner.
//
// The error names the broker and says what failed, never the password:
//
//	kafka: SASL SCRAM-SHA-512 authentication as "driftline" failed at broker 127.0.0.1:9093: SASL_AUTHENTICATION_FAILED: …
//	kafka: broker 127.0.0.1:9093: TLS verification of the server's certificate failed (…): …
//
// An authentication or TLS failure at one seed ends the check (the next
// seed would refuse the same credentials); a seed that cannot be reached
// is passed over for the next.
func Check(ctx context.Context, c ClientConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultCheckTimeout)
	defer cancel()
	var errs []error
	for i, seed := range c.Brokers {
		brokers, err := checkSeed(ctx, c, seed, len(c.Brokers)-i)
		if err != nil {
			errs = append(errs, err)
			if permanent(err) || ctx.Err() != nil {
				break
			}
			continue
		}
		return checkAdvertised(ctx, c, seed, brokers)
	}
	return errors.Join(errs...)
}

// checkSeed asks the seed broker for the cluster's brokers, within its
// share of the time left (left seeds still to try).
func checkSeed(ctx context.Context, c ClientConfig, seed string, left int) ([]kgo.BrokerMetadata, error) {
	ctx, cancel := shareOf(ctx, left)
	defer cancel()
	one := c
	one.Brokers = []string{seed}
	cl, err := one.NewFranzClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // brokers only, no topics
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, describe(ctx, c, seed, err)
	}
	out := make([]kgo.BrokerMetadata, 0, len(resp.Brokers))
	for _, b := range resp.Brokers {
		out = append(out, kgo.BrokerMetadata{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
	}
	return out, nil
}

// checkAdvertised connects to each advertised broker, as the clients will.
func checkAdvertised(ctx context.Context, c ClientConfig, seed string, brokers []kgo.BrokerMetadata) error {
	if len(brokers) == 0 {
		return fmt.Errorf("kafka: broker %s lists no brokers in its metadata", seed)
	}
	for i, b := range brokers {
		addr := fmt.Sprintf("%s:%d", b.Host, b.Port)
		one := c
		one.Brokers = []string{addr}
		cl, err := one.NewFranzClient()
		if err != nil {
			return err
		}
		bctx, cancel := shareOf(ctx, len(brokers)-i)
		_, err = kmsg.NewPtrApiVersionsRequest().RequestWith(bctx, cl)
		if err != nil {
			err = describe(bctx, c, addr, err)
		}
		cancel()
		cl.Close()
		if err != nil {
			return fmt.Errorf("%w (broker %d, advertised by seed %s: check the brokers' advertised.listeners)", err, b.NodeID, seed)
		}
	}
	return nil
}

// shareOf bounds ctx to an even share of its time left among left tries,
// so that a seed that does not answer leaves time for the next.
func shareOf(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)/time.Duration(left))
}

// checkError is a failed check at one broker.
type checkError struct {
	msg       string
	permanent bool // the same settings fail at every broker: TLS, SASL
	err       error
}

func (e *checkError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *checkError) Unwrap() error { return e.err }

func permanent(err error) bool {
	var ce *checkError
	return errors.As(err, &ce) && ce.permanent
}

// Unreachable reports whether err, from Check, only says that no broker
// could be reached (yet): the settings may be right and the cluster down
// or starting. A caller that must not exit while a dependency is away
// waits on such an error; any other error from Check is a setting to fix.
func Unreachable(err error) bool {
	var ce *checkError
	return errors.As(err, &ce) && !ce.permanent
}

// describe says what err, from a request to the broker at addr, means
// for c's settings. It never includes the password.
func describe(ctx context.Context, c ClientConfig, addr string, err error) error {
	var (
		firstEOF *kgo.ErrFirstReadEOF
		dial     *net.OpError
		token    *tokenFileError
	)
	switch {
	case c.SASL != nil && (errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState)):
		who := fmt.Sprintf("as %q", c.SASL.Username)
		if c.SASL.Mechanism == SASLOAuthBearer {
			who = "with the token in " + c.SASL.TokenFile
		}
		return &checkError{fmt.Sprintf("kafka: SASL %s authentication %s failed at broker %s", c.SASL.Mechanism, who, addr), true, err}
	case c.SASL != nil && errors.Is(err, kerr.UnsupportedSaslMechanism):
		return &checkError{fmt.Sprintf("kafka: broker %s does not enable SASL mechanism %s", addr, c.SASL.Mechanism), true, err}
	case tlsfiles.Explain(err) != "":
		return &checkError{fmt.Sprintf("kafka: broker %s: %s", addr, tlsfiles.Explain(err)), true, err}
	case errors.As(err, &token):
		return &checkError{fmt.Sprintf("kafka: SASL OAUTHBEARER token for broker %s", addr), true, err}
	case errors.As(err, &firstEOF):
		// franz-go's error guesses the cause from the step that was cut
		// short (TLS handshake, API versions, SASL).
		return &checkError{fmt.Sprintf("kafka: broker %s closed the connection at once", addr), true, err}
	case ctx.Err() != nil:
		return &checkError{fmt.Sprintf("kafka: no answer from broker %s in time%s", addr, timeoutHint(c)), false, err}
	case c.TLS == nil && !(errors.As(err, &dial) && dial.Op == "dial"):
		// Connected, then no Kafka answer: typically a TLS listener that
		// answered the plaintext request with a TLS alert.
		return &checkError{fmt.Sprintf("kafka: broker %s did not answer in the Kafka protocol: does the listener need TLS (kafka.tls)?", addr), true, err}
	}
	return &checkError{fmt.Sprintf("kafka: cannot reach broker %s", addr), false, err}
}

// timeoutHint guesses why a broker did not answer in time.
func timeoutHint(c ClientConfig) string {
	if c.TLS == nil {
		return " (a TLS listener waits for a handshake that a client without kafka.tls never sends)"
	}
	return " (a plaintext listener may wait for a request that a TLS client never sends: is it a TLS listener?)"
}
