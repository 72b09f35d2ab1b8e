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
//     at another position) finds another label's mark and is parked, as it
//     is in the inline mode;
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
	"time"

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
	c.mark = spec.Redis.KeyPrefix + "pred-joined:"
	c.ready = spec.Redis.KeyPrefix + "early-ready"
	return c
}

// joinKeepOrPark is joinOrPark for log mode: it returns the entry of a
// prediction that no other label joined (marking it with this label's
// position), or whose mark is this position (a re-join after a restore),
// and otherwise parks the label, unless the early index already holds the
// most parked labels (it returns 0 then). KEYS: prediction, early label,
// prediction index, early index, mark. ARGV: label bytes, TTL ms, expiry
// (unix ms), position, most parked labels.
var joinKeepOrPark = redis.NewScript(`
local entry = redis.call('GET', KEYS[1])
if entry then
  local by = redis.call('GET', KEYS[5])
  if not by then
    redis.call('SET', KEYS[5], ARGV[4], 'PX', ARGV[2])
    redis.call('ZREM', KEYS[3], KEYS[1])
    return entry
  end
  if by == ARGV[4] then return entry end
end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], KEYS[2])
return false
`)

// joinEarlyKeep joins a parked label whose prediction has come, for the
// early-label stream entry at position ARGV[1] ("r:<id>"), with the same
// marking rule as joinKeepOrPark. It returns {entry, label}, or false when
// the prediction or the label is gone or another label joined the row.
// KEYS: prediction, early label, prediction index, mark. ARGV: position,
// TTL ms.
var joinEarlyKeep = redis.NewScript(`
local entry = redis.call('GET', KEYS[1])
local label = redis.call('GET', KEYS[2])
if not entry or not label then return false end
local by = redis.call('GET', KEYS[4])
if by and by ~= ARGV[1] then return false end
if not by then
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
  redis.call('ZREM', KEYS[3], KEYS[1])
end
return {entry, label}
`)

// evalJoin queues the join script of one label at position pos on pipe.
func (c *PredictionCache) evalJoin(ctx context.Context, pipe redis.Pipeliner, id string, label []byte, pos string, expiry int64) *redis.Cmd {
	if !c.keep {
		return joinOrPark.Eval(ctx, pipe, []string{c.prefix + id, c.early + id, c.index, c.earlyIndex},
			label, (2 * c.ttl).Milliseconds(), expiry, c.maxParked)
	}
	return joinKeepOrPark.Eval(ctx, pipe, []string{c.prefix + id, c.early + id, c.index, c.earlyIndex, c.mark + id},
		label, (2 * c.ttl).Milliseconds(), expiry, pos, c.maxParked)
}

// labelPosition is a label record's position on the labels topic, the
// mark a join in log mode leaves: "<partition>:<offset>".
func labelPosition(m *pipeline.Message) string {
	return strconv.FormatInt(int64(m.Partition), 10) + ":" + strconv.FormatInt(m.Offset, 10)
}

// announceEarly is PutVersions' ending in log mode: each row whose label
// came early (gets[j] holds it) is appended to the early-label stream, for
// the writer to join; nothing is learned here.
func (c *PredictionCache) announceEarly(ctx context.Context, b *pipeline.Batch, gets []*redis.StringCmd, card int64, now time.Time) error {
	pipe := c.rdb.Pipeline()
	var id []byte
	n := 0
	for j, g := range gets {
		v, err := g.Bytes()
		if errors.Is(err, redis.Nil) || (err == nil && len(v) != 4) {
			continue
		}
		if err != nil {
			return fmt.Errorf("prediction cache: early label: %w", err)
		}
		id = appendEventID(id[:0], b, c.idCol, b.Features.Row[j])
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: c.ready, Values: []any{"id", string(id)}})
		n++
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("prediction cache: announce early labels: %w", err)
		}
	}
	return c.trim(ctx, card, now)
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
			pipe.ZRem(ctx, c.earlyIndex, members...)
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
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(entries))
	for i, e := range entries {
		cmds[i] = joinEarlyKeep.Eval(ctx, pipe, []string{c.prefix + e.EventID, c.early + e.EventID, c.index, c.mark + e.EventID},
			"r:"+e.ID, (2 * c.ttl).Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("label join: early labels: %w", err)
	}
	now := c.now()
	view := j.arms()
	var jb joinBuf
	var entry cachedPrediction
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return joined, fmt.Errorf("label join: early labels: %w", err)
		}
		var raw, lb string
		if len(res) == 2 {
			raw, _ = res[0].(string)
			lb, _ = res[1].(string)
		}
		j.metrics.earlyJoined.Add(1) // taken from the park: joined, or invalid
		label, ok := decodeParkedLabel(lb)
		if !ok || decodeEntry([]byte(raw), &entry) != nil {
			j.metrics.invalid.Inc()
			continue
		}
		joined = append(joined, entries[i].EventID)
		j.metrics.joined.Inc()
		j.outcome(entry.version, view.armOf(entry.version), entry.step, entry.score, label, now)
		if nd, nh := len(entry.dense), len(entry.hashed); jb.all.N == 0 || nd != jb.all.NumDense || nh != jb.all.NumHashed {
			if err := j.teach(&jb, &view, now); err != nil {
				return joined, err
			}
			jb.reset(nd, nh)
		}
		jb.add(entry.version, entry.dense, entry.hashed, label)
	}
	err = j.teach(&jb, &view, now)
	j.metrics.publish()
	return joined, err
}

// decodeParkedLabel reads a parked label's 4 bytes (a float32).
func decodeParkedLabel(s string) (float32, bool) {
	if len(s) != 4 {
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
