// Package replay is driftline's replay and backfill driver: it pushes a
// range of history through a stage chain (the live data plane's code path)
// and hands the outputs to a target. Sources and targets come in as
// interfaces; connectors/kafka and connectors/lake implement them, and
// internal/app wires them to the spec's stages.
//
// Run is the checkpointed, exactly-once driver for a Kafka input and a
// Kafka target; Direct replays without transactions (from lake files, to
// lake files, for the backtest and for retraining).
//
// # Exactly once
//
// One transactional writer (a Committer) writes every output of a run.
// Each commit holds the outputs of one or more whole micro-batches
// ("chunks") and, atomically with them, one Checkpoint per partition in
// it: the next input offset to process. So a chunk's outputs and its
// checkpoint become visible together or not at all.
//
// On start, Run fences the run's earlier writers (a killed or still
// running process of the same run; the broker aborts its open
// transaction). Only then are the checkpoints read: each partition
// resumes at the offset its last committed checkpoint names. Committed
// chunks are never redone; an aborted chunk's outputs are never visible to
// read-committed consumers and it is redone.
//
// # Determinism
//
// A redone chunk must give the same outputs. The stages must be
// deterministic functions of the input and their state, and nothing in an
// output may depend on the clock. Stateful stages (Config.Stateful) must
// keep their state where no other run sees it, fresh for every process:
// when a partition resumes past its start, the worker first re-runs the
// stages over the already committed part without writing anything
// ("fast-forward"), which rebuilds exactly the state an uninterrupted run
// would have at the checkpoint. Partitions are independent (one stage
// chain each, as in the live data plane), so running them in parallel does
// not change any output.
package replay

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/driftline/driftline/pipeline"
)

// Range is the offsets [Start, End) of one input partition.
type Range struct {
	Partition  int32
	Start, End int64
}

// Record is one position of the input log: a data record, or a control
// record (a transaction marker), which carries no data but moves the
// position, so that a checkpoint after it is exact.
type Record struct {
	pipeline.Message
	Control bool
}

// Input is the log a replay reads. Its methods are safe for concurrent use.
type Input interface {
	// OpenRange opens a reader of topic's partition from offset from,
	// with read-committed isolation; to is the end of the range, which
	// the reader may use to stop fetching.
	OpenRange(ctx context.Context, topic string, partition int32, from, to int64) (RangeReader, error)
}

// RangeReader reads one partition in offset order. It is used by one
// goroutine.
type RangeReader interface {
	// Fetch appends the next records to dst and returns it: records of
	// committed transactions and of no transaction, and control records,
	// each once, in offset order; offsets may have gaps (aborted
	// records). It blocks until some are available or ctx ends. Records
	// at or past the range's end may come: the caller stops there. The
	// records' Key and Value are the caller's to keep.
	Fetch(ctx context.Context, dst []Record) ([]Record, error)
	// Close releases the reader.
	Close()
}

// Committer writes a run's outputs and checkpoints, exactly once. Run
// calls Fence, then Checkpoints, then Commit from one goroutine.
type Committer interface {
	// Fence makes every earlier writer of the run unable to commit, and
	// ends (aborts) the transaction such a writer left open.
	Fence(ctx context.Context) error
	// Checkpoints returns the committed checkpoints of run for the input
	// topic, by partition.
	Checkpoints(ctx context.Context, run, topic string) (map[int32]Checkpoint, error)
	// Commit writes outputs (the chunks' records, in order) and the
	// checkpoints atomically: read-committed readers see all of them or
	// none. It does not keep the slices.
	Commit(ctx context.Context, outputs [][]pipeline.OutRecord, checkpoints []Checkpoint) error
}

// Checkpoint is the committed position of one partition of a run: the
// input offsets before Next are done. Its JSON form is the value of a
// checkpoint record, and Key its key.
type Checkpoint struct {
	Run       string `json:"run"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Next      int64  `json:"next"`
	End       int64  `json:"end"`
}

// Key is the checkpoint record's key: "<run>/<topic>/<partition>".
func (c Checkpoint) Key() []byte {
	return []byte(CheckpointPrefix(c.Run, c.Topic) + strconv.Itoa(int(c.Partition)))
}

// CheckpointPrefix is the key prefix of run's checkpoints for topic.
func CheckpointPrefix(run, topic string) string { return run + "/" + topic + "/" }

// ParseCheckpoint decodes a checkpoint record of run for topic; ok is
// false for any other record.
func ParseCheckpoint(key, value []byte, run, topic string) (c Checkpoint, ok bool) {
	prefix := CheckpointPrefix(run, topic)
	if len(key) <= len(prefix) || string(key[:len(prefix)]) != prefix {
		return c, false
	}
	if json.Unmarshal(value, &c) != nil || c.Run != run || c.Topic != topic {
		return c, false
	}
	return c, true
}
