package stages

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// BenchmarkDedupe is the dedupe stage alone on batches of 512 (the default
// batch.size) and 1,024 decoded events, with the in-process filter off (every id asks Redis: the stage
// before issue 15) and on (the default recent_ids), against miniredis and
// a real redis-server on loopback (whose own CPU, from INFO cpu, it reports
// as server-cpu-ns/event, and with the client's as total-cpu-ns/event), and
// the same behind delayProxy with 0.5 ms each way (a 1 ms round trip, a
// network hop; the proxy's CPU is in this process's):
//   - dups=none: every batch's ids are new (each batch gets a fresh key
//     namespace, which is the same work for Redis and the filter as fresh
//     ids, without decoding new rows inside the timed loop);
//   - dups=half: every other batch repeats of the
//     previous batch's ids at new offsets, as a producer's retried batch;
//   - dups=all: every batch repeats ids written before timing started.
func BenchmarkDedupe(b *testing.B) {
	servers := []struct {
		name   string
		client func(testing.TB) *redis.Client
	}{
		{"redis=miniredis", func(tb testing.TB) *redis.Client { return redistest.StartMiniredis(tb).Client(tb) }},
		{"redis=server", func(tb testing.TB) *redis.Client { return redistest.StartRedis(tb).Client(tb) }},
		{"redis=server+1ms", func(tb testing.TB) *redis.Client {
			c := redis.NewClient(&redis.Options{Addr: delayProxy(tb, redistest.StartRedis(tb).Addr, 500*time.Microsecond)})
			tb.Cleanup(func() { c.Close() })
			return c
		}},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			for _, rows := range []int{pipeline.DefaultBatchSize, benchBatch} {
				for _, dups := range []string{"none", "half", "all"} {
					for _, filter := range []int{0, pipeline.DefaultDedupeRecentIDs} {
						name := "batch=" + strconv.Itoa(rows) + "/dups=" + dups + "/filter=off"
						if filter > 0 {
							name = "batch=" + strconv.Itoa(rows) + "/dups=" + dups + "/filter=on"
						}
						b.Run(name, func(b *testing.B) {
							// A fresh server each: the keys earlier runs wrote
							// would slow the later ones.
							benchDedupe(b, srv.client(b), rows, dups, filter, srv.name != "redis=miniredis", false)
						})
					}
				}
			}
		})
	}
}

// benchDedupe times the stage (on record time, a replay's, when
// recordTime is set).
func benchDedupe(b *testing.B, rdb *redis.Client, rows int, dups string, filter int, server, recordTime bool) {
	spec := benchSpec(b)
	spec.Stages.Dedupe.RecentIDs = &filter
	in := benchRows(b)[:rows]
	size := 0
	for _, r := range in {
		size += len(r)
	}
	b.SetBytes(int64(size))
	// pool holds benchDedupePool decoded batches of the rows, each with
	// its own ids (the row's id behind "<k>-"); round r uses batch r %
	// benchDedupePool of key set r / benchDedupePool (a fresh key
	// namespace), so ids repeat only where dups asks, while Redis sees
	// many rounds' ids in one namespace, as in production.
	pool := make([]*pipeline.Batch, benchDedupePool)
	for k := range pool {
		rows := make([][]byte, len(in))
		for i, r := range in {
			rows[i] = bytes.Replace(r, []byte(`"event_id":"`), []byte(`"event_id":"`+strconv.Itoa(k)+"-"), 1)
		}
		pool[k] = &pipeline.Batch{}
		pool[k].Reset(benchMessages(rows))
		must(b, NewDecode(spec).Process(context.Background(), pool[k]))
		must(b, NewValidate(spec).Process(context.Background(), pool[k]))
	}
	d := NewDedupe(spec, rdb)
	if recordTime {
		d.UseRecordTime()
	}
	ns := spec.Redis.KeyPrefix
	lastSet := int64(-1)
	var batch *pipeline.Batch
	// setBatch picks the batch of ids set keySet in its key set's namespace,
	// at the offsets of round.
	setBatch := func(round, ids int64) {
		if keySet := ids / benchDedupePool; keySet != lastSet {
			setDedupeNamespace(d, ns+strconv.FormatInt(keySet, 10)+":")
			lastSet = keySet
		}
		batch = pool[ids%benchDedupePool]
		for i := range batch.Messages {
			batch.Messages[i].Offset = round*int64(rows) + int64(i)
			batch.State[i] = pipeline.RowOK
		}
	}
	if dups == "all" {
		setBatch(0, 0)
		must(b, d.Process(context.Background(), batch))
	}
	b.ReportAllocs()
	var server0 time.Duration
	var memory0 int64
	if server {
		server0 = serverCPU(b, rdb)
		memory0 = serverUsedMemory(b, rdb)
	}
	cpu0 := processCPU(b)
	round, duplicates := int64(1), 0
	for b.Loop() {
		switch dups {
		case "none":
			setBatch(round, round)
		case "half":
			setBatch(round, round/2)
		case "all":
			setBatch(round, 0)
		}
		must(b, d.Process(context.Background(), batch))
		duplicates += countDuplicates(batch)
		round++
	}
	cpu := processCPU(b) - cpu0
	events := float64((round - 1) * int64(rows))
	if server {
		serverCPU := serverCPU(b, rdb) - server0
		b.ReportMetric(float64(serverCPU.Nanoseconds())/events, "server-cpu-ns/event")
		b.ReportMetric(float64((cpu+serverCPU).Nanoseconds())/events, "total-cpu-ns/event")
		if written := events - float64(duplicates); written > 0 {
			b.ReportMetric(float64(serverUsedMemory(b, rdb)-memory0)/written, "redis-bytes/new-id")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	// This process's CPU (miniredis runs in it; a redis-server does not).
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(float64(duplicates)/events, "dups/event")
}

// benchDedupePool is how many batches of distinct ids benchDedupe decodes
// before timing.
const benchDedupePool = 64

// serverUsedMemory is a redis-server's used_memory from INFO memory, in bytes.
func serverUsedMemory(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "memory").Result()
	must(b, err)
	for _, line := range strings.Split(info, "\n") {
		if val, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(val, 10, 64)
			must(b, err)
			return n
		}
	}
	b.Fatalf("INFO memory has no used_memory: %q", info)
	return 0
}

// serverCPU is the CPU time a redis-server has used, user and system, from
// INFO cpu (microseconds).
func serverCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	must(b, err)
	var total time.Duration
	for _, line := range strings.Split(info, "\n") {
		name, val, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name != "used_cpu_user" && name != "used_cpu_sys" {
			continue
		}
		sec, err := strconv.ParseFloat(val, 64)
		must(b, err)
		total += time.Duration(sec * float64(time.Second))
	}
	if total == 0 {
		b.Fatalf("INFO cpu has no used_cpu_user/used_cpu_sys: %q", info)
	}
	return total
}
