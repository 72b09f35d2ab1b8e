package pipeline

import (
	"sync"
	"sync/atomic"
	"time"
)

// TEMPORARY instrumentation for issue 15's latency hunt.

type BatchTrace struct {
	Partition                                           int32
	FirstOffset                                         int64
	N                                                   int
	FirstAppend, LastAppend                             time.Time
	Polled, Start                                       time.Time // set by the connector
	Entered, StagesDone, Slot, Written, Acked, Finished time.Time
	DeferredDone                                        time.Time
}

var (
	TraceOn atomic.Bool
	traceMu sync.Mutex
	traces  = map[traceKey]*BatchTrace{}
)

type traceKey struct {
	topic string
	p     int32
	off   int64
}

func TraceGet(topic string, p int32, off int64) *BatchTrace {
	traceMu.Lock()
	defer traceMu.Unlock()
	k := traceKey{topic, p, off}
	t := traces[k]
	if t == nil {
		t = &BatchTrace{Partition: p, FirstOffset: off}
		traces[k] = t
	}
	return t
}

func TraceTake() []*BatchTrace {
	traceMu.Lock()
	defer traceMu.Unlock()
	var out []*BatchTrace
	for _, t := range traces {
		out = append(out, t)
	}
	traces = map[traceKey]*BatchTrace{}
	return out
}

func TraceLock()   { traceMu.Lock() }
func TraceUnlock() { traceMu.Unlock() }
