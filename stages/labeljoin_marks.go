package stages

import (
	"strconv"
	"sync"
)

// CommittedOffsets is what a consumer group has committed, per partition of
// one topic: the offset below which no record will be delivered again, even
// after a crash. Committed fits kafka.Config.OnCommitted. It is safe for
// concurrent use; the zero value is ready.
//
// The label plane keeps the marks that make its scripts safe to run again
// (a label batch's taken marks, a put's put marks) until the offsets of
// the records they were made for are committed, when given these
// (LabelJoin.KeepMarksUntilCommitted): a record delivered again after
// a restart then finds what an earlier process did with it.
type CommittedOffsets struct {
	mu   sync.Mutex
	next map[int32]int64
}

// Committed records that partition's offsets below next are committed.
// The topic is not kept: one CommittedOffsets follows one topic.
func (o *CommittedOffsets) Committed(_ string, partition int32, next int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next == nil {
		o.next = map[int32]int64{}
	}
	if next > o.next[partition] {
		o.next[partition] = next
	}
}

// below is partition's committed offset (0 when none is known).
func (o *CommittedOffsets) below(partition int32) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next[partition]
}

// KeepMarksUntilCommitted makes the label plane keep its marks until the
// records they were made for are committed: a label batch's taken marks
// until labels reports the labels topic's offsets committed past them, a
// put's put marks until input reports the input topic's past its rows.
// Either may be nil: that side's marks are then deleted by the partition's
// next batch (or put), which makes a batch safe to run twice in one process
// but not after a restart. labels is ignored in learner-state log mode,
// whose rows keep their own marks. Call it before the join is used.
//
// What a record delivered again after a restart then gets: a label whose
// prediction an earlier process took finds its mark and is joined again
// (counted in Joined, taught, and given to OnOutcome, with its source) by
// the process that handles it, instead of being parked until it expires;
// a put over the same rows (same first offset, same ids) replies the
// early labels the earlier run joined, and a put over them cut otherwise
// joins each row's early label that an earlier put held for it (at the
// same position), which are counted and taught likewise, instead of
// caching the rows as pending; a label that an earlier process parked and
// a put then took (joined early) is counted parked (Early) again, and not
// parked again, so that it does not also expire an orphan. The earlier process's
// counters and learned state died with it: each label ends once in the
// counters and the models of the process that settles it.
func (j *LabelJoin) KeepMarksUntilCommitted(labels, input *CommittedOffsets) {
	j.cache.labelsCommitted, j.cache.inputCommitted = labels, input
}

// takenSpan is how many labels-topic offsets share one hash of taken marks
// (a generation): marks are named after the generation of their label's
// position, so that a label delivered again after a restart, in a batch
// cut otherwise, finds its mark; a generation's hash is deleted once its
// offsets are all committed. One chunk's labels span at most two
// generations (one script call takes both), unless offsets skip.
const takenSpan = labelPlaneChunk

// takenGen is the generation of a labels-topic offset.
func takenGen(offset int64) int64 { return offset / takenSpan }

// takenMarksOf names the taken marks of a labels partition's generation.
func (c *PredictionCache) takenMarksOf(partition int32, gen int64) string {
	return c.taken + strconv.FormatInt(int64(partition), 10) + ":g" + strconv.FormatInt(gen, 10)
}

// committedTaken appends to done the taken marks of partition that a
// label batch starting at offset first may delete (KeepMarksUntilCommitted):
// every generation from cleared up whose offsets are all committed, below
// the batch's own. It returns where clearing goes on once the batch's
// call deleted them. cleared < 0 is a partition's first batch: clearing
// starts two generations below its own, those a process that stopped may
// have left (older ones expire).
func (c *PredictionCache) committedTaken(done []string, partition int32, first, cleared int64) ([]string, int64) {
	if cleared < 0 {
		cleared = max(0, takenGen(first)-2)
	}
	upTo := min(takenGen(c.labelsCommitted.below(partition)), takenGen(first)) // exclusive
	for ; cleared < upTo; cleared++ {
		done = append(done, c.takenMarksOf(partition, cleared))
	}
	return done, cleared
}

// heldSpan is how many input offsets share one hash of held early labels
// (a generation, see putBatch): a row delivered again after a restart, in
// a chunk cut otherwise, finds its label in its offset's generation; a
// generation's hash is deleted once its offsets are all committed.
const heldSpan = labelPlaneChunk

// heldGen is the generation of an input offset.
func heldGen(offset int64) int64 { return offset / heldSpan }

// heldOf names the held labels' hash of an input partition's generation
// (gen: its decimal digits; "" names the partition's hashes but the
// generation, as putBatch is given it).
func (c *PredictionCache) heldOf(partition int32, gen string) string {
	return c.held + strconv.FormatInt(int64(partition), 10) + ":g" + gen
}

// committedHeld appends to done the held labels' hashes of partition that
// a put starting at offset first may delete: every generation from
// cleared up below the put's own and, with KeepMarksUntilCommitted, whose
// offsets are all committed. It returns where clearing goes on once the
// put deleted them. cleared < 0 is the partition's first put in this
// process: clearing starts two generations below its own, those a process
// that stopped may have left (older ones expire).
func (c *PredictionCache) committedHeld(done []string, partition int32, first, cleared int64) ([]string, int64) {
	if c.keep {
		return done, cleared // log mode holds no labels
	}
	if cleared < 0 {
		cleared = max(0, heldGen(first)-2)
	}
	upTo := heldGen(first) // exclusive
	if c.inputCommitted != nil {
		upTo = min(upTo, heldGen(c.inputCommitted.below(partition)))
	}
	for ; cleared < upTo; cleared++ {
		done = append(done, c.heldOf(partition, strconv.FormatInt(cleared, 10)))
	}
	return done, cleared
}
