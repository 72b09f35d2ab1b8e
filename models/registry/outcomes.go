package registry

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// OutcomeSums are running sums over the labelled outcomes of one served model version.
// For each per-outcome quantity they hold the sum and the sum of squares, so a reader
// gets the mean (Sum/N) and the variance (SumSq/N - mean²) of each, and can compare two
// versions by a difference of means with its standard error.
type OutcomeSums struct {
	// N counts the outcomes; Correct those whose predicted class was right; Positives
	// those whose label was positive (classification only).
	N, Correct, Positives int64
	// LogLoss and LogLossSq sum the log loss of each outcome and its square
	// (classification only).
	LogLoss, LogLossSq float64
	// AbsErr and AbsErrSq sum |y - ŷ| and its square.
	AbsErr, AbsErrSq float64
	// SqErr and SqErrSq sum (y - ŷ)² and its square.
	SqErr, SqErrSq float64
	// Paired sums the differences between these outcomes and another
	// version's outcomes of the same labels, where there are such (a
	// shadow's, against the champion's served predictions).
	Paired PairedSums
}

// PairedSums are running sums over paired outcomes: two versions' outcomes
// of the same label. For each per-outcome quantity they hold the sum of
// its difference d (this version's minus the other's) and of d², so a
// reader gets the mean difference and its standard error, which is much
// smaller than two independent means' when the versions' outcomes are
// correlated, as a candidate's and its champion's are.
type PairedSums struct {
	// N counts the pairs; CorrectDiff and CorrectDiffSq sum d and d² of
	// "predicted the right class" (1 or 0), so d is -1, 0 or 1.
	N, CorrectDiff, CorrectDiffSq int64
	// The sums of d and d² of the log loss, |y - ŷ| and (y - ŷ)².
	LogLossDiff, LogLossDiffSq float64
	AbsErrDiff, AbsErrDiffSq   float64
	SqErrDiff, SqErrDiffSq     float64
}

// Add returns s + o, field by field.
func (s OutcomeSums) Add(o OutcomeSums) OutcomeSums {
	return OutcomeSums{
		N: s.N + o.N, Correct: s.Correct + o.Correct, Positives: s.Positives + o.Positives,
		LogLoss: s.LogLoss + o.LogLoss, LogLossSq: s.LogLossSq + o.LogLossSq,
		AbsErr: s.AbsErr + o.AbsErr, AbsErrSq: s.AbsErrSq + o.AbsErrSq,
		SqErr: s.SqErr + o.SqErr, SqErrSq: s.SqErrSq + o.SqErrSq,
		Paired: s.Paired.plus(o.Paired, 1),
	}
}

// Sub returns s - o, field by field: the outcomes added between reading o and s.
func (s OutcomeSums) Sub(o OutcomeSums) OutcomeSums {
	return OutcomeSums{
		N: s.N - o.N, Correct: s.Correct - o.Correct, Positives: s.Positives - o.Positives,
		LogLoss: s.LogLoss - o.LogLoss, LogLossSq: s.LogLossSq - o.LogLossSq,
		AbsErr: s.AbsErr - o.AbsErr, AbsErrSq: s.AbsErrSq - o.AbsErrSq,
		SqErr: s.SqErr - o.SqErr, SqErrSq: s.SqErrSq - o.SqErrSq,
		Paired: s.Paired.plus(o.Paired, -1),
	}
}

// plus returns p + sign·o, field by field (sign is 1 or -1).
func (p PairedSums) plus(o PairedSums, sign int64) PairedSums {
	f := float64(sign)
	return PairedSums{N: p.N + sign*o.N, CorrectDiff: p.CorrectDiff + sign*o.CorrectDiff, CorrectDiffSq: p.CorrectDiffSq + sign*o.CorrectDiffSq,
		LogLossDiff: p.LogLossDiff + f*o.LogLossDiff, LogLossDiffSq: p.LogLossDiffSq + f*o.LogLossDiffSq,
		AbsErrDiff: p.AbsErrDiff + f*o.AbsErrDiff, AbsErrDiffSq: p.AbsErrDiffSq + f*o.AbsErrDiffSq,
		SqErrDiff: p.SqErrDiff + f*o.SqErrDiff, SqErrDiffSq: p.SqErrDiffSq + f*o.SqErrDiffSq}
}

// Stored hash fields, in OutcomeSums field order.
var (
	outcomeIntFields = [...]string{"n", "correct", "positives", "pair_n", "pair_correct_d", "pair_correct_d_sq"}
	// outcomeFloatFields' sums of differences ("_d") may be negative.
	outcomeFloatFields = [...]string{"logloss", "logloss_sq", "abserr", "abserr_sq", "sqerr", "sqerr_sq",
		"pair_logloss_d", "pair_logloss_d_sq", "pair_abserr_d", "pair_abserr_d_sq", "pair_sqerr_d", "pair_sqerr_d_sq"}
)

func (s *OutcomeSums) ints() [6]*int64 {
	return [6]*int64{&s.N, &s.Correct, &s.Positives, &s.Paired.N, &s.Paired.CorrectDiff, &s.Paired.CorrectDiffSq}
}
func (s *OutcomeSums) floats() [12]*float64 {
	p := &s.Paired
	return [12]*float64{&s.LogLoss, &s.LogLossSq, &s.AbsErr, &s.AbsErrSq, &s.SqErr, &s.SqErrSq,
		&p.LogLossDiff, &p.LogLossDiffSq, &p.AbsErrDiff, &p.AbsErrDiffSq, &p.SqErrDiff, &p.SqErrDiffSq}
}

// check validates s as a delta: counts and sums finite and ≥ 0 (sums of differences
// may be negative), Correct and Positives at most N; the pairs' N ≥ 0, at most N,
// CorrectDiffSq at most it and |CorrectDiff| at most CorrectDiffSq.
func (s OutcomeSums) check(version string) error {
	p := s.Paired
	if s.N < 0 || s.Correct < 0 || s.Positives < 0 || s.Correct > s.N || s.Positives > s.N ||
		p.N < 0 || p.N > s.N || p.CorrectDiffSq < 0 || p.CorrectDiffSq > p.N || p.CorrectDiff > p.CorrectDiffSq || -p.CorrectDiff > p.CorrectDiffSq {
		return fmt.Errorf("%w: outcomes of version %q count n=%d correct=%d positives=%d pairs=%d correct d=%d d²=%d",
			ErrInvalid, version, s.N, s.Correct, s.Positives, p.N, p.CorrectDiff, p.CorrectDiffSq)
	}
	for i, f := range s.floats() {
		if math.IsNaN(*f) || math.IsInf(*f, 0) || (*f < 0 && !isDiffField(outcomeFloatFields[i])) {
			return fmt.Errorf("%w: outcomes of version %q sum %s is %v", ErrInvalid, version, outcomeFloatFields[i], *f)
		}
	}
	return nil
}

// isDiffField reports whether a stored float field sums differences.
func isDiffField(name string) bool { return strings.HasSuffix(name, "_d") }

// MaxOutcomeVersionLen is the longest served version label AddOutcomes accepts, in bytes.
const MaxOutcomeVersionLen = 64

// OutcomeTTL is how long a version's outcome sums live after their last AddOutcomes,
// so that the sums of versions no longer served go away by themselves.
const OutcomeTTL = 30 * 24 * time.Hour

func checkOutcomeVersion(model, version string) error {
	return checkModelString(model, "served version label", version, MaxOutcomeVersionLen)
}

// checkModelString checks model's name, and s, which names what of the
// model (a served version label, a trigger key): 1 to maxLen bytes.
func checkModelString(model, what, s string, maxLen int) error {
	if err := checkName("model", model); err != nil {
		return err
	}
	if s == "" || len(s) > maxLen {
		return fmt.Errorf("%w: %s %q of model %s (want 1 to %d bytes)", ErrInvalid, what, s, model, maxLen)
	}
	return nil
}

func (r *Registry) outcomesKey(model, version string) string {
	return r.modelKeys(model).model + ":outcomes:" + version
}

// AddOutcomes adds deltas, keyed by served version label (such as "3"; 1 to
// MaxOutcomeVersionLen bytes), to model's outcome sums in Redis, so that every instance
// that serves the model contributes to one total per version. Zero deltas are skipped;
// each version written gets its TTL reset to OutcomeTTL.
//
// All deltas are validated before any write (counts and sums ≥ 0 and finite, Correct and
// Positives at most N; ErrInvalid otherwise), then written in one MULTI/EXEC, so a reader
// never sees part of a call. The model and versions need not be registered. Adding is
// not idempotent: a caller that retries after an error whose outcome is unknown (a
// timeout) may count the same outcomes twice.
func (r *Registry) AddOutcomes(ctx context.Context, model string, deltas map[string]OutcomeSums) error {
	if err := checkName("model", model); err != nil {
		return err
	}
	for v, d := range deltas {
		if err := checkOutcomeVersion(model, v); err != nil {
			return err
		}
		if err := d.check(v); err != nil {
			return err
		}
	}
	nonzero := 0
	for _, d := range deltas {
		if d != (OutcomeSums{}) {
			nonzero++
		}
	}
	if nonzero == 0 {
		return nil
	}
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for v, d := range deltas {
			if d == (OutcomeSums{}) {
				continue
			}
			key := r.outcomesKey(model, v)
			for i, x := range d.ints() {
				if *x != 0 {
					p.HIncrBy(ctx, key, outcomeIntFields[i], *x)
				}
			}
			for i, f := range d.floats() {
				if *f != 0 {
					p.HIncrByFloat(ctx, key, outcomeFloatFields[i], *f)
				}
			}
			p.PExpire(ctx, key, OutcomeTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: add outcomes of %s: %w", model, err)
	}
	return nil
}

// Outcomes returns the outcome sums of the served version label of model, summed over
// all instances; zero sums when none were added (or they expired). It fails with
// ErrCorrupt when a stored sum does not decode.
func (r *Registry) Outcomes(ctx context.Context, model, version string) (OutcomeSums, error) {
	if err := checkOutcomeVersion(model, version); err != nil {
		return OutcomeSums{}, err
	}
	all, err := r.rdb.HGetAll(ctx, r.outcomesKey(model, version)).Result()
	if err != nil {
		return OutcomeSums{}, fmt.Errorf("registry: read outcomes of %s version %s: %w", model, version, err)
	}
	var s OutcomeSums
	for i, x := range s.ints() {
		if raw, ok := all[outcomeIntFields[i]]; ok {
			if *x, err = strconv.ParseInt(raw, 10, 64); err != nil {
				return OutcomeSums{}, fmt.Errorf("%w: outcome sum %s of %s version %s is %q", ErrCorrupt, outcomeIntFields[i], model, version, raw)
			}
		}
	}
	for i, f := range s.floats() {
		if raw, ok := all[outcomeFloatFields[i]]; ok {
			if *f, err = strconv.ParseFloat(raw, 64); err != nil || math.IsNaN(*f) || math.IsInf(*f, 0) {
				return OutcomeSums{}, fmt.Errorf("%w: outcome sum %s of %s version %s is %q", ErrCorrupt, outcomeFloatFields[i], model, version, raw)
			}
		}
	}
	return s, nil
}
