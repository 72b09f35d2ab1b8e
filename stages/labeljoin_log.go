package stages

// The label join in learner-state log mode (topics.model_state).
//
// One writer per model learns every label and publishes the learner state
// with the label positions it covers; a new writer restores the last
// published state and joins the labels after its positions again. For that
// re-join to find the rows, and to give the state an uninterrupted run
// would have had, a joined row is kept, not deleted, until a published
// state covers it:
//
//   - joining marks a cached prediction with the position of the label that
//     joined it ("<partition>:<offset>" of the labels topic, or "r:<id>" of
//     the early-label stream), in a key of its own next to the row, and
//     takes it out of the pending index (it is no longer waiting, so expiry
//     and eviction leave it alone);
//   - a label joins a row that has no mark, or whose mark is its own
//     position: a restored writer re-joining the labels after its
//     positions finds its own marks and learns them again, exactly once in
//     the restored state; a second label for the same event (a duplicate
//     at another position) finds another label's mark and is refused as a
//     duplicate (ReasonLabelDuplicate);
//   - once a publish that covers the joins has committed, the writer
//     releases them (ReleaseJoined): the rows, their marks and any early
//     label of the same event are deleted.
//
// An early label (one that overtakes its prediction) is parked as in the
// inline mode. The data plane, which caches the prediction, does not learn
// in log mode: it appends the event id to the early-label stream, a Redis
// stream that the writer reads after the labels topic (ReadEarlyReady,
// JoinEarlyReady) and whose position the published state also covers. An
// early label is learned exactly once, but its place in the learning
// sequence is when the writer reads the stream, which a restored writer
// may see at another point than the writer it replaces: byte-identical
// replay holds for labels that come after their predictions.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// NewLoggedPredictionCache builds the prediction cache of a pipeline whose
// learner state is a log (topics.model_state): it keeps joined rows until
// the writer releases them, and announces early labels on the early-label
// stream instead of joining them in the data plane (see the file comment).
func NewLoggedPredictionCache(spec *pipeline.Spec, rdb redis.UniversalClient, version string, m *JoinMetrics) *PredictionCache {
	c := NewPredictionCache(spec, rdb, version, m)
	c.keep = true
	c.mark = spec.Redis.Prefix() + "pred-joined:"
	c.ready = spec.Redis.Prefix() + "early-ready"
	return c
}

// labelPosition is a label record's position on the labels topic, the
// mark a join in log mode leaves: "<partition>:<offset>".
func labelPosition(m *pipeline.Message) string {
	return strconv.FormatInt(int64(m.Partition), 10) + ":" + strconv.FormatInt(m.Offset, 10)
}

// EarlyReady is an early-label stream entry: the event whose parked label
// can now be joined.
type EarlyReady struct {
	// ID is the stream entry's id, its position ("<ms>-<seq>").
	ID string
	// EventID is the event's id.
	EventID string
}

// ReadEarlyReady returns up to n early-label stream entries after the
// entry id after ("" or "0-0": from the start), oldest first. It fails
// for a cache not built by NewLoggedPredictionCache.
func (c *PredictionCache) ReadEarlyReady(ctx context.Context, after string, n int64) ([]EarlyReady, error) {
	if !c.keep {
		return nil, errors.New("prediction cache: no early-label stream outside log mode")
	}
	start := "-"
	if after != "" && after != "0-0" {
		start = "(" + after
	}
	msgs, err := c.rdb.XRangeN(ctx, c.ready, start, "+", n).Result()
	if err != nil {
		return nil, fmt.Errorf("prediction cache: read early-label stream: %w", err)
	}
	out := make([]EarlyReady, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		out = append(out, EarlyReady{ID: m.ID, EventID: id})
	}
	return out, nil
}

// TrimEarlyReady deletes the early-label stream's entries up to and
// including upTo ("" or "0-0": none): a writer restored from a publish
// covering them drops what the last writer read but could not release.
func (c *PredictionCache) TrimEarlyReady(ctx context.Context, upTo string) error {
	if !c.keep || upTo == "" || upTo == "0-0" {
		return nil
	}
	ms, seq, ok := strings.Cut(upTo, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("prediction cache: early-label stream id %q", upTo)
	}
	if err := c.rdb.XTrimMinID(ctx, c.ready, ms+"-"+strconv.FormatUint(n+1, 10)).Err(); err != nil {
		return fmt.Errorf("prediction cache: trim the early-label stream: %w", err)
	}
	return nil
}

// ReleaseJoined deletes what a committed publish covers: the rows joined
// to events (their predictions, marks and parked labels) and the
// early-label stream entries done. Call it only after the publish that
// covers them committed: a writer restored from an older publish would
// join them again.
func (c *PredictionCache) ReleaseJoined(ctx context.Context, events []string, earlyDone []string) error {
	if len(events) == 0 && len(earlyDone) == 0 {
		return nil
	}
	const chunk = 512
	for len(events) > 0 || len(earlyDone) > 0 {
		ev := events[:min(chunk, len(events))]
		events = events[len(ev):]
		done := earlyDone[:min(chunk, len(earlyDone))]
		earlyDone = earlyDone[len(done):]
		pipe := c.rdb.Pipeline()
		if len(ev) > 0 {
			// Multi-key, as PutVersions' early joins: on a Cluster the
			// spec's key prefix carries a hash tag (redis.hash_tag).
			keys := make([]string, 0, 3*len(ev))
			members := make([]any, 0, len(ev))
			for _, id := range ev {
				keys = append(keys, c.prefix+id, c.mark+id, c.early+id)
				members = append(members, c.early+id)
			}
			pipe.Unlink(ctx, keys...)
			// A label this version parked left its label batch when it
			// was joined (joinEarlyBatch); one the previous version
			// parked and joined is still in its index.
			pipe.ZRem(ctx, c.oldEarlyIndex, members...)
		}
		if len(done) > 0 {
			pipe.XDel(ctx, c.ready, done...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("prediction cache: release joined rows: %w", err)
		}
	}
	return nil
}

// JoinEarlyReady joins the parked labels of entries (see ReadEarlyReady)
// and teaches them like labels from the topic: outcomes, the served arms'
// Learn, the shadow's pass. It returns the event ids it joined, which the
// caller releases once a publish covers them.
func (j *LabelJoin) JoinEarlyReady(ctx context.Context, entries []EarlyReady) (joined []string, err error) {
	c := j.cache
	if !c.keep || len(entries) == 0 {
		return nil, nil
	}
	res := make([]any, 0, len(entries))
	for from := 0; from < len(entries); from += labelPlaneChunk {
		part, err := c.joinEarly(ctx, entries[from:min(from+labelPlaneChunk, len(entries))])
		if err != nil {
			return nil, fmt.Errorf("label join: early labels: %w", err)
		}
		res = append(res, part...)
	}
	now := c.now()
	view := j.arms()
	var jb joinBuf
	var entry cachedPrediction
	for i, r := range res {
		if r == nil {
			continue
		}
		var raw, lb string
		if pair, _ := r.([]any); len(pair) == 2 {
			raw, _ = pair[0].(string)
			lb, _ = pair[1].(string)
		}
		j.metrics.earlyJoined.Add(1) // taken from the park: joined, or invalid
		label, ok := decodeParkedLabel(lb)
		if !ok || decodeEntry([]byte(raw), &entry) != nil {
			j.metrics.invalid.Inc()
			continue
		}
		joined = append(joined, entries[i].EventID)
		j.metrics.joined.Inc()
		j.outcome(entries[i].EventID, entry.version, view.armOf(entry.version), entry.step, entry.score, label, now, SourcePosition{})
		if nd, nh := len(entry.dense), len(entry.hashed); jb.all.N == 0 || nd != jb.all.NumDense || nh != jb.all.NumHashed {
			if err := j.teach(&jb, &view, now); err != nil {
				return joined, err
			}
			jb.reset(nd, nh)
		}
		jb.add(entry.version, entry.score, entry.dense, entry.hashed, label)
	}
	err = j.teach(&jb, &view, now)
	j.metrics.publish()
	return joined, err
}

// joinEarly joins the parked labels of entries in one joinEarlyBatch call,
// and returns per entry {entry, label}, or nil.
func (c *PredictionCache) joinEarly(ctx context.Context, entries []EarlyReady) ([]any, error) {
	keys := make([]string, 0, 5+3*len(entries))
	keys = append(keys, c.batches, c.earlyBatches, c.pending, c.parked, c.oldEarlyIndex)
	args := make([]any, 0, 5+len(entries))
	args = append(args, (2 * c.ttl).Milliseconds(), 0, c.prefix, c.batch, c.earlyBatch)
	for _, e := range entries {
		keys = append(keys, c.prefix+e.EventID, c.early+e.EventID, c.mark+e.EventID)
		args = append(args, "r:"+e.ID)
	}
	res, err := joinEarlyBatch.Run(ctx, c.rdb, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != len(entries) {
		return nil, fmt.Errorf("a reply of %d elements for %d entries", len(res), len(entries))
	}
	return res, nil
}

// decodeParkedLabel reads a parked label: its 4 bytes (a float32), and
// the position of the record that parked it after them.
func decodeParkedLabel(s string) (float32, bool) {
	if len(s) < 4 {
		return 0, false
	}
	return math.Float32frombits(binary.LittleEndian.Uint32([]byte(s))), true
}

// TakeJoined returns the events the labels topic's handlers joined since
// the last call, in log mode (nil otherwise), for ReleaseJoined once a
// publish covers them; a writer that rewinds to its last publish drops
// them instead (its re-join marks them again).
func (j *LabelJoin) TakeJoined() []string {
	j.joinedMu.Lock()
	defer j.joinedMu.Unlock()
	out := j.joined
	j.joined = nil
	return out
}

// noteJoined records events joined in log mode.
func (j *LabelJoin) noteJoined(ids ...string) {
	j.joinedMu.Lock()
	j.joined = append(j.joined, ids...)
	j.joinedMu.Unlock()
}

// Cache returns the join's prediction cache.
func (j *LabelJoin) Cache() *PredictionCache { return j.cache }
