package stages

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// putJob is one scored batch's prediction-cache write (putBatch), with
// everything it reads copied out of the batch: a pipeline.Runner runs it
// after the batch's stages (Batch.Defer), concurrently with the produce
// and the next batch's stages, which reuse the batch. A job is pooled
// (PredictionCache.jobs); it may run more than once (a transient failure
// retried, see RunnerConfig.Retry) until it succeeds, and is released
// then.
type putJob struct {
	topic     string // the batch's input topic (copied: the batch's may be a view)
	partition int32
	at        time.Time
	// Per row (feature row j of the batch): the event id (ids[idEnds[j-1]:
	// idEnds[j]]), its source offset, score, version (versions is empty
	// when the champion served every row), rollout step, and features.
	ids                 []byte
	idEnds              []int
	offsets             []int64
	scores              []float32
	versions            []string
	steps               []servedStep
	numDense, numHashed int
	dense               []float32
	hashed              []int32
	// refs names each chunk's batch of predictions (batchRef), fixed for
	// the job so that a run again re-caches into the same batches.
	refs []string
	// marks names each chunk's put marks (PredictionCache.putMarks), and
	// sums is each chunk's fingerprint (chunkSum).
	marks, sums []string
	// Built per run: found is the rows whose early label a run joined;
	// done the partition's put marks kept (putDone), of which those ending
	// at or below deleted are deleted by the run.
	found   []earlyLabel
	done    []putMark
	deleted int64
	keys    []string
	args    []any
	key     []byte
	// covered is, per row of the chunk a run puts, '1' where p.done's
	// puts covered the row's offset (see putBatch).
	covered []byte
	// heldDone is the partition's held labels' generations the run
	// deletes (committedHeld), and heldCleared where clearing goes on
	// once it succeeded.
	heldDone    []string
	heldCleared int64
}

// id is row j's event id.
func (p *putJob) id(j int) string { return string(p.ids[p.idStart(j):p.idEnds[j]]) }

func (p *putJob) len() int { return len(p.offsets) }

// version is the version that served row j, as the cache entry names it.
func (p *putJob) version(c *PredictionCache, j int) string {
	if len(p.versions) == 0 {
		return c.version
	}
	return p.versions[j]
}

// newPutJob copies what the cache write of b's scored rows needs.
func (c *PredictionCache) newPutJob(b *pipeline.Batch, served Served) *putJob {
	p, _ := c.jobs.Get().(*putJob)
	if p == nil {
		p = &putJob{}
	}
	fb := &b.Features
	n := fb.Len()
	if p.topic != b.Topic {
		p.topic = strings.Clone(b.Topic)
	}
	p.partition, p.at = b.Partition, c.now()
	p.ids, p.idEnds, p.offsets, p.scores = p.ids[:0], p.idEnds[:0], p.offsets[:0], p.scores[:0]
	p.versions, p.steps, p.refs, p.marks, p.sums = p.versions[:0], p.steps[:0], p.refs[:0], p.marks[:0], p.sums[:0]
	for j, i := range fb.Row {
		p.ids = appendEventID(p.ids, b, c.idCol, i)
		p.idEnds = append(p.idEnds, len(p.ids))
		p.offsets = append(p.offsets, b.Messages[i].Offset)
		p.steps = append(p.steps, served.step(j))
	}
	if served.Versions != nil {
		p.versions = append(p.versions, served.Versions[:n]...)
	}
	p.scores = append(p.scores, b.Scores[:n]...)
	p.numDense, p.numHashed = fb.NumDense, fb.NumHashed
	p.dense = append(p.dense[:0], fb.Dense[:n*fb.NumDense]...)
	p.hashed = append(p.hashed[:0], fb.Hashed[:n*fb.NumHashed]...)
	for from := 0; from < n; from += labelPlaneChunk {
		p.refs = append(p.refs, c.batchRef())
		p.marks = append(p.marks, c.putMarks(p.partition, p.offsets[from]))
		p.sums = append(p.sums, p.chunkSum(from, min(from+labelPlaneChunk, n)))
	}
	return p
}

// release returns a job that succeeded to the pool.
func (c *PredictionCache) release(p *putJob) {
	clear(p.versions)
	clear(p.keys)
	clear(p.args)
	clear(p.done)
	clear(p.heldDone)
	c.jobs.Put(p)
}

// chunkSum is a fingerprint of rows [from, to): their ids and offsets
// (FNV-1a, 64 bits), so that put marks are only taken for the same rows.
func (p *putJob) chunkSum(from, to int) string {
	h := fnv.New64a()
	var buf [8]byte
	for j := from; j < to; j++ {
		_, _ = h.Write(p.ids[p.idStart(j):p.idEnds[j]])
		binary.LittleEndian.PutUint64(buf[:], uint64(p.offsets[j]))
		_, _ = h.Write(buf[:])
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// putMarks names the put marks of a chunk of predictions whose first row
// came from offset first of partition (see putBatch).
func (c *PredictionCache) putMarks(partition int32, first int64) string {
	return c.putTaken + strconv.FormatInt(int64(partition), 10) + ":" + strconv.FormatInt(first, 10)
}

// putDone tracks, per partition, the put marks of the jobs that succeeded
// in this process and are not deleted yet: the last job's or, with
// KeepMarksUntilCommitted, every job's whose rows are not all committed.
// A later job deletes those it may (putChunk), and a job over the same
// rows again (the batch handed in again after its cache write succeeded)
// knows that their first reply was consumed.
type putDone struct {
	mu   sync.Mutex
	last map[int32][]putMark
	// cleared is, per partition, the first generation of held labels not
	// deleted yet (committedHeld); none is -1.
	cleared map[int32]int64
}

// putMark is one chunk's put marks, the offset of its first row and the
// offset past its last.
type putMark struct {
	name       string
	first, end int64
}

// get appends partition's kept marks to into, and returns them with the
// partition's first generation of held labels not deleted yet (-1: none
// deleted by this process yet).
func (d *putDone) get(partition int32, into []putMark) ([]putMark, int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cleared, ok := d.cleared[partition]
	if !ok {
		cleared = -1
	}
	return append(into, d.last[partition]...), cleared
}

// set records the marks of a job that succeeded on partition, having
// deleted the ones before it that end at or below deleted (all of them
// when deleted is math.MaxInt64) and the held labels' generations below
// p.heldCleared.
func (d *putDone) set(partition int32, p *putJob, deleted int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last, d.cleared = map[int32][]putMark{}, map[int32]int64{}
	}
	d.cleared[partition] = p.heldCleared
	kept := slices.DeleteFunc(d.last[partition], func(m putMark) bool {
		return m.end <= deleted || slices.Contains(p.marks, m.name)
	})
	for k, name := range p.marks {
		kept = append(kept, putMark{name: name, first: p.offsets[k*labelPlaneChunk], end: p.chunkEnd(k)})
	}
	d.last[partition] = kept
}

// chunkEnd is the offset past chunk k's last row.
func (p *putJob) chunkEnd(k int) int64 {
	return p.offsets[min((k+1)*labelPlaneChunk, p.len())-1] + 1
}

// deletable is the offset at or below which a job of partition may delete
// the put marks of the jobs before it: those whose rows are committed,
// with KeepMarksUntilCommitted; all of them (the last job's) without.
func (c *PredictionCache) deletable(partition int32) int64 {
	if c.inputCommitted == nil {
		return math.MaxInt64
	}
	return c.inputCommitted.below(partition)
}

// run caches the job's predictions (one putBatch call per
// labelPlaneChunk rows), and returns the rows whose early label it joined.
// The trim's counts are added to the metrics once every chunk succeeded,
// so a job run again after a failure counts once: the script replies, to
// a run again, what an earlier run of the same chunk did (see putBatch).
func (c *PredictionCache) run(ctx context.Context, p *putJob) ([]earlyLabel, error) {
	p.found = p.found[:0]
	var cleared int64
	p.done, cleared = c.done.get(p.partition, p.done[:0])
	p.deleted = c.deletable(p.partition)
	p.heldDone, p.heldCleared = c.committedHeld(p.heldDone[:0], p.partition, p.offsets[0], cleared)
	var missing, orphaned, evicted int64
	for k, from := 0, 0; from < p.len(); k, from = k+1, from+labelPlaneChunk {
		res, err := c.putChunk(ctx, p, k, from, min(from+labelPlaneChunk, p.len()), k == 0)
		if err != nil {
			return nil, err
		}
		missing += res[0]
		orphaned += res[1]
		evicted += res[2]
	}
	c.metrics.missing.Add(float64(missing + evicted))
	c.metrics.orphan.Add(float64(orphaned))
	c.metrics.evicted.Add(float64(evicted))
	return p.found, nil
}

// putChunk runs putBatch on rows [from, to) of the job, chunk k, and
// appends the rows whose early label it joined to p.found. p.done is the
// put marks of the partition's puts that succeeded in this process and
// are kept: when they hold the chunk's own, its earlier reply was
// consumed, and a row within any of them was put (and its early label
// taught) by this process already, so a label held for it is not replied
// again (putBatch); with drop, the call deletes those that are none of
// the job's and end at or below p.deleted, releasing the early labels
// they hold. It returns the trim's counts: missing, orphaned, evicted.
func (c *PredictionCache) putChunk(ctx context.Context, p *putJob, k, from, to int, drop bool) ([3]int64, error) {
	var counts [3]int64
	n := to - from
	ref, marks := p.refs[k], p.marks[k]
	consumed := "0"
	keys := append(p.keys[:0], c.batches, c.earlyBatches, c.pending, c.parked, c.oldEarlyIndex, c.batch+ref, c.ready, marks)
	if c.ready == "" {
		keys[6] = c.batches // unused outside log mode
	}
	end := p.chunkEnd(k)
	for _, d := range p.done {
		switch {
		case d.end == end && d.name == marks: // the same rows end there
			consumed = "1" // this process consumed the chunk's reply already
		case drop && d.end <= p.deleted && !slices.Contains(p.marks, d.name):
			keys = append(keys, d.name)
		}
	}
	if drop {
		keys = append(keys, p.heldDone...)
	}
	p.coverRows(from, to)
	args := append(p.args[:0], (2 * c.ttl).Milliseconds(), c.maxPending, c.prefix, c.batch, c.earlyBatch, c.keepFlag(), ref, len(keys)-8, consumed, p.sums[k],
		string(p.covered), c.heldOf(p.partition, ""), heldSpan, p.offsetList(from, to), c.taken, takenSpan)
	for j := from; j < to; j++ {
		key := append(append(p.key[:0], c.prefix...), p.ids[p.idStart(j):p.idEnds[j]]...)
		p.key = key
		id := key[len(c.prefix):]
		keys = append(keys, string(key), c.early+string(id))
		args = append(args, encodeEntry(p.at, p.scores[j], p.version(c, j), p.steps[j],
			p.dense[j*p.numDense:(j+1)*p.numDense], p.hashed[j*p.numHashed:(j+1)*p.numHashed], ref))
	}
	p.keys, p.args = keys, args
	res, err := putBatch.Run(ctx, c.rdb, keys, args...).Slice()
	if err != nil {
		return counts, fmt.Errorf("prediction cache: put: %w", err)
	}
	if len(res) < 3 || len(res)%2 != 1 {
		return counts, fmt.Errorf("prediction cache: put: a reply of %d elements", len(res))
	}
	for i := range counts {
		counts[i], _ = res[i].(int64)
	}
	for k := 3; k < len(res); k += 2 {
		row, _ := res[k].(int64)
		raw, _ := res[k+1].(string)
		label, ok := decodeParkedLabel(raw)
		if !ok || row < 0 || int(row) >= n {
			return counts, fmt.Errorf("prediction cache: put: early label %v of row %v", res[k+1], res[k])
		}
		p.found = append(p.found, earlyLabel{row: from + int(row), label: label})
	}
	return counts, nil
}

// coverRows sets p.covered for rows [from, to): '1' where one of p.done's
// puts covered the row's offset, else '0'. A batch's offsets ascend: it
// costs one pass over p.done (which may hold many puts while commits
// trail), not one per row.
func (p *putJob) coverRows(from, to int) {
	offs := p.offsets[from:to]
	p.covered = p.covered[:0]
	for range offs {
		p.covered = append(p.covered, '0')
	}
	for _, d := range p.done {
		if d.end <= offs[0] || d.first > offs[len(offs)-1] {
			continue
		}
		j, _ := slices.BinarySearch(offs, d.first)
		for ; j < len(offs) && offs[j] < d.end; j++ {
			p.covered[j] = '1'
		}
	}
}

// offsetList is the source offsets of rows [from, to), decimal and
// space-separated, as putBatch takes them.
func (p *putJob) offsetList(from, to int) string {
	buf := p.key[:0]
	for j := from; j < to; j++ {
		if j > from {
			buf = append(buf, ' ')
		}
		buf = strconv.AppendInt(buf, p.offsets[j], 10)
	}
	p.key = buf
	return string(buf)
}

// idStart is where row j's id starts in p.ids.
func (p *putJob) idStart(j int) int {
	if j == 0 {
		return 0
	}
	return p.idEnds[j-1]
}

// PutServed caches every scored row of the batch at once, with which
// model served each row and under which rollout step (Score.Served), and
// returns, for rows whose label came early, the label (the row's index in
// b.Features). It is one script call (putBatch) per labelPlaneChunk rows:
// cache them as one batch, join their early labels, trim. The data plane
// defers it instead (LabelJoin.ObserveServed).
func (c *PredictionCache) PutServed(ctx context.Context, b *pipeline.Batch, served Served) ([]earlyLabel, error) {
	p := c.newPutJob(b, served)
	found, err := c.run(ctx, p)
	if err != nil {
		return nil, err
	}
	found = append([]earlyLabel(nil), found...)
	c.done.set(p.partition, p, p.deleted)
	c.release(p)
	return found, nil
}

// ObserveServed is ObserveVersions with the arm of each row and the canary
// share of the batch (Score.Served), kept with each prediction so that its
// outcome counts for the rollout step that served it.
//
// The cache write and the teaching of the early labels it joins are the
// batch's deferred work (pipeline.Batch.Defer): under a pipeline.Runner
// they run after the batch's stages, concurrently with its produce and
// the next batch's stages, and the batch is acknowledged once they
// succeeded; elsewhere they run at once. They read a copy of the rows
// (putJob), never the batch.
func (j *LabelJoin) ObserveServed(ctx context.Context, b *pipeline.Batch, served Served) error {
	if b.Features.Len() == 0 {
		return nil
	}
	p := j.cache.newPutJob(b, served)
	return b.Defer(ctx, func(ctx context.Context) error { return j.put(ctx, p) })
}

// put runs a put job and teaches the early labels it joined, from the
// job's copy of their rows; it releases the job once done.
func (j *LabelJoin) put(ctx context.Context, p *putJob) error {
	found, err := j.cache.run(ctx, p)
	if err != nil {
		return err
	}
	if len(found) > 0 {
		if err := j.teachEarly(p, found); err != nil {
			return err
		}
	}
	j.cache.done.set(p.partition, p, p.deleted)
	j.cache.release(p)
	return nil
}

// teachEarly counts and teaches the early labels a put joined.
func (j *LabelJoin) teachEarly(p *putJob, found []earlyLabel) error {
	jb, _ := j.bufs.Get().(*joinBuf)
	if jb == nil {
		jb = &joinBuf{}
	}
	defer j.bufs.Put(jb)
	view := j.arms()
	now := j.cache.now()
	jb.reset(p.numDense, p.numHashed)
	j.metrics.earlyJoined.Add(int64(len(found)))
	for _, e := range found {
		r := e.row
		j.metrics.joined.Inc()
		v := view.Champion.Version
		if len(p.versions) > 0 {
			v = p.versions[r]
		}
		j.outcome(p.id(r), v, view.armOf(v), p.steps[r], p.scores[r], e.label, now,
			SourcePosition{Topic: p.topic, Partition: p.partition, Offset: p.offsets[r]})
		jb.add(v, p.scores[r], p.dense[r*p.numDense:(r+1)*p.numDense], p.hashed[r*p.numHashed:(r+1)*p.numHashed], e.label)
	}
	err := j.teach(jb, &view, now)
	j.metrics.publish()
	return err
}
