package stages

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// lostReplies is a go-redis hook that loses the replies of the next n
// calls of script after Redis ran them, as a client whose read timed out
// sees them: the script's writes happened, the caller gets an error.
type lostReplies struct {
	script *redis.Script
	n      atomic.Int32
}

var errReplyLost = errors.New("read tcp: i/o timeout (the reply was lost)")

func (h *lostReplies) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lostReplies) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *lostReplies) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil || !h.isScript(cmd.Args()) || h.n.Add(-1) < 0 {
			return err
		}
		cmd.SetErr(errReplyLost)
		return errReplyLost
	}
}

// isScript says whether args are an EVALSHA or EVAL of h.script.
func (h *lostReplies) isScript(args []any) bool {
	if len(args) < 2 {
		return false
	}
	body := fmt.Sprint(args[1])
	sum := sha1.Sum([]byte(body))
	return body == h.script.Hash() || hex.EncodeToString(sum[:]) == h.script.Hash()
}

// TestLabelBatchRetriedAfterALostReply: a label batch whose script ran but
// whose reply the client lost (a read timeout) fails, counts nothing, and,
// handled again as the partition loop does, counts and learns exactly as
// one run of the batch on a second rig: the labels it joined are joined
// (not parked, as a second run found them before), its early label is
// parked once, its duplicate refused once. Its taken marks go with the
// partition's first batch in the next generation of positions (without
// KeepMarksUntilCommitted), which parks a label and so keeps its own.
func TestLabelBatchRetriedAfterALostReply(t *testing.T) {
	spec := testSpec(t, false)
	lost, once := newJoinRig(t, spec), newJoinRig(t, spec)
	hook := &lostReplies{script: joinBatch}
	lost.cache.rdb.AddHook(hook)
	batch := func() []pipeline.Message {
		msgs := labelMsgs([]string{"a", "b", "c", "a"}, labelRule)
		for i := range msgs {
			msgs[i].Offset = int64(100 + i)
		}
		return msgs
	}
	for _, rig := range []*joinRig{lost, once} {
		rig.predict(t, "a", "b")
	}
	hook.n.Store(1)
	if err := lost.handler.Handle(context.Background(), batch()); !errors.Is(err, errReplyLost) {
		t.Fatalf("Handle with the reply lost: %v, want the lost reply's error", err)
	}
	if c := lost.join.Counts(); c != (LabelCounts{}) {
		t.Fatalf("a batch whose reply was lost counted %+v, want nothing", c)
	}
	lost.handleCounted(t, batch())
	once.handleCounted(t, batch())
	want := joinCounts{joined: 2, early: 1, invalid: 1}
	lost.expect(t, "retried batch", want)
	once.expect(t, "one run", want)
	if !slices.Equal(lost.weights(), once.weights()) {
		t.Fatal("the retried batch learned otherwise than one run of it")
	}
	if lost.join.Counts() != once.join.Counts() {
		t.Fatalf("counts %+v after the retry, %+v after one run", lost.join.Counts(), once.join.Counts())
	}
	// c's prediction comes: its label, parked once, joins once.
	for _, rig := range []*joinRig{lost, once} {
		rig.predict(t, "c")
		if c := rig.join.Counts(); c.Joined != 3 || c.Parked() != 0 || c.Settled() != c.Processed {
			t.Fatalf("after c's prediction: %+v", c)
		}
	}
	if !slices.Equal(lost.weights(), once.weights()) {
		t.Fatal("the weights differ after the early label")
	}
	marks := func() []string {
		var out []string
		for _, k := range lost.r.Mini.Keys() {
			if strings.HasPrefix(k, lost.cache.taken) {
				out = append(out, k)
			}
		}
		return out
	}
	if got := marks(); !slices.Equal(got, []string{lost.cache.takenMarks(0, 100)}) {
		t.Fatalf("taken marks %v, want the batch's own", got)
	}
	bad := labelMsgs([]string{"bad"}, labelRule)
	bad[0].Value = []byte(`{"event_id":`)
	lost.handleCounted(t, bad) // refused before any script call: the marks wait for one
	if got := marks(); len(got) != 1 {
		t.Fatalf("taken marks %v after a batch with no script call, want the batch's still", got)
	}
	lost.handleCounted(t, labelsAt(105, "zz")) // after bad, at 104
	if got := marks(); len(got) != 1 {
		t.Fatalf("taken marks %v after the next batch in the same generation, want the generation's still", got)
	}
	lost.handleCounted(t, labelsAt(takenSpan, "zy"))
	if got := marks(); !slices.Equal(got, []string{lost.cache.takenMarks(0, takenSpan)}) {
		t.Fatalf("taken marks %v after the first batch of the next generation, want its own alone (zy parked there)", got)
	}
}

// TestJoinBatchTwiceRepliesTheSame: the label script sent twice with the
// same arguments (go-redis resends a call whose read timed out) replies
// the same both times and leaves Redis as one run did.
func TestJoinBatchTwiceRepliesTheSame(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.predict(t, "a", "b")
	ctx := context.Background()
	ids := []string{"a", "b", "c", "a", "c"}
	labels := []float32{1, 0, 1, 0, 0}
	pos := []string{"0:7", "0:8", "0:9", "0:10", "0:11"}
	first, err := rig.cache.joinLabels(ctx, ids, labels, pos, [2]string{rig.cache.takenMarks(0, 7), rig.cache.takenMarks(0, 7)}, len(ids), nil)
	if err != nil {
		t.Fatal(err)
	}
	state := rig.r.Mini.Dump()
	second, err := rig.cache.joinLabels(ctx, ids, labels, pos, [2]string{rig.cache.takenMarks(0, 7), rig.cache.takenMarks(0, 7)}, len(ids), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("first run %q, second %q", first, second)
	}
	if kinds := fmt.Sprintf("%T %T %v %v %v", first[0], first[1], first[2], first[3], first[4]); kinds != "string string <nil> 1 1" {
		t.Errorf("replies %s, want a and b taken, c parked, the second a and c refused as duplicates", kinds)
	}
	if got := rig.r.Mini.Dump(); got != state {
		t.Errorf("the second run changed Redis:\nbefore %s\nafter  %s", state, got)
	}
}

// TestParkedLabelExpiresOnRedisClock: a parked label's expiry is Redis's
// clock, not the client's: a client whose clock runs an hour ahead does
// not count it an orphan while Redis keeps it, and its prediction then
// joins it, once. Past its expiry on Redis's clock it is an orphan, and
// its key is gone with it: a prediction cached after does not join it.
func TestParkedLabelExpiresOnRedisClock(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	server := rig.now
	rig.cache.now = func() time.Time { rig.r.Mini.SetTime(server); return rig.now }
	rig.label(t, "z", "q")
	rig.now = rig.now.Add(time.Hour) // this client's clock, 40 minutes past the parked labels' expiry
	rig.predict(t, "y")
	if c := rig.join.Counts(); c.Orphan != 0 || c.Parked() != 2 {
		t.Fatalf("counted on the client's clock: %+v", c)
	}
	rig.predict(t, "z")
	if c := rig.join.Counts(); c.Joined != 1 || c.Orphan != 0 || c.Parked() != 1 {
		t.Fatalf("z's prediction came: %+v, want z joined, q parked", c)
	}
	server = server.Add(2*rig.cache.ttl + time.Millisecond)
	rig.predict(t, "x")
	if c := rig.join.Counts(); c.Orphan != 1 || c.Parked() != 0 || c.Settled() != c.Processed {
		t.Fatalf("past q's expiry on Redis's clock: %+v, want q an orphan", c)
	}
	if rig.r.Mini.Exists(spec.Redis.KeyPrefix + "early-label:q") {
		t.Fatal("the orphan's parked label is still there")
	}
	rig.predict(t, "q")
	if c := rig.join.Counts(); c.Joined != 1 || c.Orphan != 1 || c.Settled() != c.Processed {
		t.Fatalf("the orphan joined its prediction too: %+v", c)
	}
}

// TestSecondLabelOfAParkedEvent: a second label for an event whose first
// label is still parked is refused as a duplicate (to the DLQ, counted
// invalid) and the first is kept and joined: every label counted once.
func TestSecondLabelOfAParkedEvent(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	sink := rig.withDLQ(t)
	var got []float32
	rig.join.OnOutcome = func(o Outcome) { got = append(got, o.Label) }
	rig.handleCounted(t, labelMsgs([]string{"x"}, func(int) int { return 1 }))
	rig.handleCounted(t, labelMsgs([]string{"x"}, func(int) int { return 0 }))
	if r := sink.reasons(); len(sink.recs) != 1 || r[ReasonLabelDuplicate] != 1 {
		t.Fatalf("DLQ reasons %v, want one %s", r, ReasonLabelDuplicate)
	}
	rig.predict(t, "x")
	if !slices.Equal(got, []float32{1}) {
		t.Fatalf("outcomes with labels %v, want the first label's, 1", got)
	}
	c := rig.join.Counts()
	if c.Processed != 2 || c.Joined != 1 || c.Invalid != 1 || c.Parked() != 0 || c.Settled() != c.Processed {
		t.Fatalf("counts %+v, want 1 joined and 1 invalid of 2", c)
	}
}
