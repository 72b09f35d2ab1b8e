package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/redistest"
)

// starter starts a Redis for one test: miniredis in unit tests, redis-server in
// integration tests.
type starter func(testing.TB) *redistest.Redis

// runSuite runs every registry behaviour test against Redis servers from start.
func runSuite(t *testing.T, start starter) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *redistest.Redis)
	}{
		{"RegisterAndRead", testRegisterAndRead},
		{"InvalidWritesNothing", testInvalidWritesNothing},
		{"CorruptionDetected", testCorruptionDetected},
		{"AliasCompareAndSet", testAliasCompareAndSet},
		{"AuditTrail", testAuditTrail},
		{"AuditCapped", testAuditCapped},
		{"ConcurrentRegistrants", testConcurrentRegistrants},
		{"WatchConvergenceBound", testWatchConvergenceBound},
		{"WatchCoalesces", testWatchCoalesces},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, start(t)) })
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newRegistry(t *testing.T, r *redistest.Redis, cfg registry.Config) (*registry.Registry, *redis.Client) {
	t.Helper()
	c := r.Client(t)
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	reg, err := registry.New(c, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return reg, c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var sig = registry.Signature{
	Inputs:  []registry.Tensor{{Name: "features", DType: "float32", Shape: []int64{-1, 8}}},
	Outputs: []registry.Tensor{{Name: "probability", DType: "float32", Shape: []int64{-1, 1}}},
}

func registration(model, who string, snapshot []byte) registry.Registration {
	return registry.Registration{Model: model, Signature: sig, Snapshot: snapshot, Who: who, Why: "test"}
}

func testRegisterAndRead(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, _ := newRegistry(t, r, registry.Config{})
	lin := registry.Lineage{
		SpecHash: "sha256:abc",
		Source: registry.Source{
			Topic:      "events",
			Partitions: []registry.PartitionRange{{Partition: 0, From: 10, To: 500}, {Partition: 3, From: 0, To: 42}},
			From:       t0.Add(-time.Hour), To: t0,
		},
		Profile: json.RawMessage(`{"x":{"bins":[0,1,2]}}`),
		Metrics: map[string]float64{"accuracy": 0.91, "logloss": 0.25},
	}
	in := registry.Registration{Model: "churn", Signature: sig, Lineage: lin,
		Snapshot: []byte("snapshot-1"), ONNX: []byte("onnx-1"), Who: "alice", Why: "first"}
	v1, err := reg.Register(ctx, in)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if v1.Number != 1 || v1.Model != "churn" || v1.CreatedBy != "alice" || !v1.Created.Equal(t0) {
		t.Fatalf("v1 = %+v", v1)
	}
	got, err := reg.Version(ctx, "churn", 1)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if !reflect.DeepEqual(got, v1) {
		t.Fatalf("Version read back\n got %+v\nwant %+v", got, v1)
	}
	if got.Snapshot.Size != 10 || len(got.Snapshot.SHA256) != 64 || got.ONNX.Size != 6 {
		t.Fatalf("artifact descriptions %+v %+v", got.Snapshot, got.ONNX)
	}
	for kind, want := range map[registry.ArtifactKind]string{registry.ArtifactSnapshot: "snapshot-1", registry.ArtifactONNX: "onnx-1"} {
		b, err := reg.Artifact(ctx, "churn", 1, kind)
		if err != nil || string(b) != want {
			t.Fatalf("Artifact %s = %q, %v; want %q", kind, b, err, want)
		}
	}

	// A parent that does not exist is rejected without using a number.
	bad := registration("churn", "bob", []byte("s"))
	bad.Lineage.Parent = 7
	if _, err := reg.Register(ctx, bad); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Register with missing parent: %v; want ErrNotFound", err)
	}
	child := registration("churn", "bob", []byte("snapshot-2"))
	child.Lineage.Parent = 1
	v2, err := reg.Register(ctx, child)
	if err != nil || v2.Number != 2 {
		t.Fatalf("Register child = %d, %v; want version 2", v2.Number, err)
	}
	if _, err := reg.Artifact(ctx, "churn", 2, registry.ArtifactONNX); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("absent ONNX artifact: %v; want ErrNotFound", err)
	}
	if _, err := reg.Artifact(ctx, "churn", 3, registry.ArtifactSnapshot); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("absent version: %v; want ErrNotFound", err)
	}
	if _, err := reg.Register(ctx, registration("fraud", "carol", []byte("f"))); err != nil {
		t.Fatalf("Register fraud: %v", err)
	}
	models, err := reg.Models(ctx)
	if err != nil || !slices.Equal(models, []string{"churn", "fraud"}) {
		t.Fatalf("Models = %v, %v", models, err)
	}
	vs, err := reg.Versions(ctx, "churn")
	if err != nil || len(vs) != 2 || vs[0].Number != 1 || vs[1].Number != 2 || vs[1].Lineage.Parent != 1 {
		t.Fatalf("Versions = %+v, %v", vs, err)
	}
	if _, err := reg.Versions(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Versions of missing model: %v; want ErrNotFound", err)
	}
}

func testInvalidWritesNothing(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, c := newRegistry(t, r, registry.Config{})
	ok := registration("m", "alice", []byte("s"))
	mutate := func(f func(*registry.Registration)) registry.Registration { x := ok; f(&x); return x }
	for name, in := range map[string]registry.Registration{
		"model name":      mutate(func(x *registry.Registration) { x.Model = "a:b" }),
		"empty model":     mutate(func(x *registry.Registration) { x.Model = "" }),
		"no who":          mutate(func(x *registry.Registration) { x.Who = "" }),
		"no artifacts":    mutate(func(x *registry.Registration) { x.Snapshot = nil }),
		"no inputs":       mutate(func(x *registry.Registration) { x.Signature = registry.Signature{Outputs: sig.Outputs} }),
		"duplicate input": mutate(func(x *registry.Registration) { x.Signature.Inputs = []registry.Tensor{sig.Inputs[0], sig.Inputs[0]} }),
		"no dtype": mutate(func(x *registry.Registration) {
			x.Signature.Outputs = []registry.Tensor{{Name: "y"}}
		}),
		"bad dim": mutate(func(x *registry.Registration) {
			x.Signature.Outputs = []registry.Tensor{{Name: "y", DType: "float32", Shape: []int64{-2}}}
		}),
		"negative parent": mutate(func(x *registry.Registration) { x.Lineage.Parent = -1 }),
		"partitions without topic": mutate(func(x *registry.Registration) {
			x.Lineage.Source.Partitions = []registry.PartitionRange{{From: 0, To: 1}}
		}),
		"reversed offsets": mutate(func(x *registry.Registration) {
			x.Lineage.Source = registry.Source{Topic: "t", Partitions: []registry.PartitionRange{{From: 5, To: 1}}}
		}),
		"reversed times": mutate(func(x *registry.Registration) {
			x.Lineage.Source = registry.Source{From: t0, To: t0.Add(-time.Second)}
		}),
		"bad profile": mutate(func(x *registry.Registration) { x.Lineage.Profile = json.RawMessage(`{`) }),
		"NaN metric":  mutate(func(x *registry.Registration) { x.Lineage.Metrics = map[string]float64{"auc": nan()} }),
	} {
		if _, err := reg.Register(ctx, in); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: Register error %v; want ErrInvalid", name, err)
		}
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: "m", Alias: "bad alias", Version: 1, Who: "a"}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("MoveAlias with bad alias: %v; want ErrInvalid", err)
	}
	if _, err := reg.AppendAudit(ctx, registry.Event{What: "x"}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("AppendAudit without who: %v; want ErrInvalid", err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("invalid writes left %d keys (%v)", n, err)
	}
}

func testCorruptionDetected(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, c := newRegistry(t, r, registry.Config{Prefix: "{corrupt}"})
	if _, err := reg.Register(ctx, registration("m", "alice", []byte("good bytes"))); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, "{corrupt}:m:m:artifacts", "1/snapshot", "evil bytes").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Artifact(ctx, "m", 1, registry.ArtifactSnapshot); !errors.Is(err, registry.ErrCorrupt) {
		t.Fatalf("tampered artifact: %v; want ErrCorrupt", err)
	}
	if err := c.HDel(ctx, "{corrupt}:m:m:artifacts", "1/snapshot").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Artifact(ctx, "m", 1, registry.ArtifactSnapshot); !errors.Is(err, registry.ErrCorrupt) {
		t.Fatalf("missing artifact bytes: %v; want ErrCorrupt", err)
	}
	if err := c.HSet(ctx, "{corrupt}:m:m:versions", "1", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Version(ctx, "m", 1); !errors.Is(err, registry.ErrCorrupt) {
		t.Fatalf("garbled metadata: %v; want ErrCorrupt", err)
	}
}

func testAliasCompareAndSet(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, _ := newRegistry(t, r, registry.Config{})
	move := func(alias string, to, expect int64) (int64, error) {
		return reg.MoveAlias(ctx, registry.AliasMove{Model: "m", Alias: alias, Version: to, Expect: expect, Who: "op", Why: "test"})
	}
	if _, err := move(registry.AliasChampion, 1, 0); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("alias on missing model: %v; want ErrNotFound", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := reg.Register(ctx, registration("m", "alice", []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		alias      string
		to, expect int64
		err        error
		epoch      int64
	}{
		{registry.AliasChampion, 1, 0, nil, 1},
		{registry.AliasChampion, 2, 0, registry.ErrConflict, 1}, // it is 1, not unset
		{registry.AliasChampion, 2, 3, registry.ErrConflict, 1},
		{registry.AliasChampion, 2, 1, nil, 2},
		{registry.AliasChallenger, 9, 0, registry.ErrNotFound, 2}, // no version 9
		{registry.AliasChallenger, 3, 0, nil, 3},
		{"shadow-2026", 3, registry.AnyVersion, nil, 4},
		{"shadow-2026", 1, registry.AnyVersion, nil, 5},
		{registry.AliasChallenger, 0, 2, registry.ErrConflict, 5}, // delete expecting the wrong version
		{registry.AliasChallenger, 0, 3, nil, 6},
		{registry.AliasChallenger, 0, registry.AnyVersion, registry.ErrNotFound, 6}, // already gone
	}
	for i, s := range steps {
		epoch, err := move(s.alias, s.to, s.expect)
		if !errors.Is(err, s.err) || (err == nil && epoch != s.epoch) {
			t.Fatalf("step %d %+v: epoch %d, err %v", i, s, epoch, err)
		}
		set, err := reg.Aliases(ctx, "m")
		if err != nil || set.Epoch != s.epoch {
			t.Fatalf("step %d: Aliases epoch %d, %v; want %d", i, set.Epoch, err, s.epoch)
		}
	}
	set, _ := reg.Aliases(ctx, "m")
	if want := map[string]int64{"champion": 2, "shadow-2026": 1}; !reflect.DeepEqual(set.Versions, want) {
		t.Fatalf("aliases %v; want %v", set.Versions, want)
	}
	v, err := reg.Resolve(ctx, "m", registry.AliasChampion)
	if err != nil || v.Number != 2 {
		t.Fatalf("Resolve champion = %d, %v; want 2", v.Number, err)
	}
	if _, err := reg.Resolve(ctx, "m", registry.AliasChallenger); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Resolve removed alias: %v; want ErrNotFound", err)
	}
	if _, err := reg.Aliases(ctx, "other"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Aliases of missing model: %v; want ErrNotFound", err)
	}
}

func testAuditTrail(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, _ := newRegistry(t, r, registry.Config{})
	if _, err := reg.Register(ctx, registration("m", "retrainer", []byte("a"))); err != nil {
		t.Fatal(err)
	}
	child := registration("m", "retrainer", []byte("b"))
	child.Lineage.Parent = 1
	if _, err := reg.Register(ctx, child); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: "m", Alias: "champion", Version: 2, Who: "rollout", Why: "gate passed",
		Details: map[string]string{"step": "3", "epoch": "forged"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: "m", Alias: "champion", Version: 2, Expect: 1, Who: "x"}); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("conflicting move: %v", err)
	}
	if _, err := reg.AppendAudit(ctx, registry.Event{Who: "rollout", What: "gate.hold", Model: "m", Version: 2, Why: "too few samples",
		When: t0.Add(time.Minute), Details: map[string]string{"n": "12"}}); err != nil {
		t.Fatal(err)
	}
	want := []registry.Event{
		{Who: "retrainer", What: registry.WhatRegister, Model: "m", Version: 1, Why: "test", When: t0},
		{Who: "retrainer", What: registry.WhatRegister, Model: "m", Version: 2, Why: "test", When: t0, Details: map[string]string{"parent": "1"}},
		{Who: "rollout", What: registry.WhatAliasSet, Model: "m", Version: 2, Why: "gate passed", When: t0,
			Details: map[string]string{"alias": "champion", "from": "0", "to": "2", "epoch": "1", "step": "3"}},
		{Who: "rollout", What: "gate.hold", Model: "m", Version: 2, Why: "too few samples", When: t0.Add(time.Minute), Details: map[string]string{"n": "12"}},
	}
	// Read in pages of 3 to check that from is exclusive.
	var got []registry.Event
	from := ""
	for {
		page, err := reg.ReadAudit(ctx, from, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		from = page[len(page)-1].ID
	}
	if len(got) != len(want) {
		t.Fatalf("audit has %d events; want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if got[i].ID == "" {
			t.Errorf("event %d has no ID", i)
		}
		got[i].ID = ""
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if _, err := reg.ReadAudit(ctx, "", 0); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("ReadAudit count 0: %v; want ErrInvalid", err)
	}
}

func testAuditCapped(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	const maxLen, total = 5, 400
	reg, c := newRegistry(t, r, registry.Config{Prefix: "{cap}", AuditMaxLen: maxLen})
	for i := 0; i < total; i++ {
		if _, err := reg.AppendAudit(ctx, registry.Event{Who: "w", What: "tick", Details: map[string]string{"i": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.XLen(ctx, "{cap}:audit").Result()
	// MAXLEN ~ trims whole stream nodes (100 entries each by default) on real Redis.
	if err != nil || n < maxLen || n > maxLen+100 {
		t.Fatalf("audit stream holds %d entries (%v) after %d appends; want within [%d, %d]", n, err, total, maxLen, maxLen+100)
	}
	evs, err := reg.ReadAudit(ctx, "", total)
	if err != nil || len(evs) != int(n) || evs[len(evs)-1].Details["i"] != strconv.Itoa(total-1) {
		t.Fatalf("ReadAudit after trimming: %d events, %v", len(evs), err)
	}
}

// testConcurrentRegistrants has two registries on separate connections register 50
// versions each while moving "challenger" to each new version by compare-and-set.
func testConcurrentRegistrants(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	const writers, each = 2, 50
	regs := make([]*registry.Registry, writers)
	for i := range regs {
		regs[i], _ = newRegistry(t, r, registry.Config{})
	}
	var mu sync.Mutex
	content := map[int64][]byte{}
	moves := 0
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reg := regs[w]
			for i := range each {
				snap := []byte(fmt.Sprintf("writer %d snapshot %d", w, i))
				v, err := reg.Register(ctx, registration("shared", fmt.Sprintf("writer-%d", w), snap))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if _, dup := content[v.Number]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("version %d handed out twice", v.Number)
					return
				}
				content[v.Number] = snap
				mu.Unlock()
				for { // CAS loop: read, then move expecting what was read
					set, err := reg.Aliases(ctx, "shared")
					if err != nil {
						errs <- err
						return
					}
					cur := set.Versions[registry.AliasChallenger]
					if cur > v.Number {
						break // a newer version is already challenger
					}
					_, err = reg.MoveAlias(ctx, registry.AliasMove{Model: "shared", Alias: registry.AliasChallenger,
						Version: v.Number, Expect: cur, Who: fmt.Sprintf("writer-%d", w)})
					if err == nil {
						mu.Lock()
						moves++
						mu.Unlock()
						break
					}
					if !errors.Is(err, registry.ErrConflict) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vs, err := regs[0].Versions(ctx, "shared")
	if err != nil || len(vs) != writers*each {
		t.Fatalf("Versions: %d, %v; want %d", len(vs), err, writers*each)
	}
	for i, v := range vs {
		if v.Number != int64(i+1) {
			t.Fatalf("version %d at position %d; want 1..%d without gaps", v.Number, i, writers*each)
		}
		b, err := regs[1].Artifact(ctx, "shared", v.Number, registry.ArtifactSnapshot)
		if err != nil || !bytes.Equal(b, content[v.Number]) {
			t.Fatalf("version %d artifact %q, %v; want %q", v.Number, b, err, content[v.Number])
		}
	}
	set, err := regs[1].Aliases(ctx, "shared")
	if err != nil || set.Epoch != int64(moves) || set.Versions[registry.AliasChallenger] != writers*each {
		t.Fatalf("aliases %+v, %v; want epoch %d and challenger %d", set, err, moves, writers*each)
	}
	evs, err := regs[0].ReadAudit(ctx, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	registered := map[int64]bool{}
	prevTo, epoch := "0", 0
	for _, e := range evs {
		switch e.What {
		case registry.WhatRegister:
			registered[e.Version] = true
		case registry.WhatAliasSet:
			epoch++
			// The stream order is the commit order, so the moves chain up.
			if e.Details["from"] != prevTo || e.Details["epoch"] != strconv.Itoa(epoch) {
				t.Fatalf("alias event %+v after to=%s, epoch %d: the chain is broken", e, prevTo, epoch-1)
			}
			if !registered[e.Version] {
				t.Fatalf("alias moved to version %d before its registration event", e.Version)
			}
			prevTo = e.Details["to"]
		}
	}
	if len(registered) != writers*each || epoch != moves {
		t.Fatalf("audit has %d registrations and %d alias moves; want %d and %d", len(registered), epoch, writers*each, moves)
	}
}

// maxRTT returns the slowest of a few PINGs to c.
func maxRTT(t *testing.T, ctx context.Context, c *redis.Client) time.Duration {
	var worst time.Duration
	for range 5 {
		start := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	return worst
}

// testWatchConvergenceBound checks the documented bound: three instances, each with its
// own connection, see an alias move within WatchInterval + one round trip. The test
// adds a fixed allowance for goroutine scheduling on a loaded (race-enabled) machine.
func testWatchConvergenceBound(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	const interval = 100 * time.Millisecond
	const scheduling = 50 * time.Millisecond
	writer, wc := newRegistry(t, r, registry.Config{WatchInterval: interval})
	for i := 0; i < 2; i++ {
		if _, err := writer.Register(ctx, registration("hot", "alice", []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	var chans []<-chan registry.AliasChange
	for range 3 {
		reg, _ := newRegistry(t, r, registry.Config{WatchInterval: interval})
		ch := reg.Watch(ctx, "hot")
		first := <-ch
		if first.Err != nil || first.Epoch != 0 || len(first.Versions) != 0 {
			t.Fatalf("first snapshot %+v", first)
		}
		chans = append(chans, ch)
	}
	bound := interval + maxRTT(t, ctx, wc) + scheduling
	cur := int64(0)
	for round := range 4 {
		to := int64(round%2 + 1)
		// Spread the moves over the poll phase.
		time.Sleep(time.Duration(round) * interval / 4)
		start := time.Now()
		epoch, err := writer.MoveAlias(ctx, registry.AliasMove{Model: "hot", Alias: registry.AliasChampion, Version: to, Expect: cur, Who: "op"})
		if err != nil {
			t.Fatal(err)
		}
		cur = to
		for i, ch := range chans {
			select {
			case got := <-ch:
				if got.Err != nil || got.Epoch != epoch || got.Versions[registry.AliasChampion] != to {
					t.Fatalf("round %d watcher %d got %+v; want epoch %d champion %d", round, i, got, epoch, to)
				}
				if lag := time.Since(start); lag > bound {
					t.Fatalf("round %d watcher %d converged after %s; bound %s", round, i, lag, bound)
				}
			case <-time.After(10 * bound):
				t.Fatalf("round %d watcher %d saw nothing in %s", round, i, 10*bound)
			}
		}
	}
}

func testWatchCoalesces(t *testing.T, r *redistest.Redis) {
	ctx, cancel := context.WithCancel(ctxT(t))
	reg, _ := newRegistry(t, r, registry.Config{WatchInterval: 200 * time.Millisecond})
	ch := reg.Watch(ctx, "late")
	if first := <-ch; first.Err != nil || first.Epoch != 0 || first.Model != "late" {
		t.Fatalf("watching a model before it exists: %+v", first)
	}
	if _, err := reg.Register(ctx, registration("late", "alice", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	for range 3 { // three moves inside one poll interval
		if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: "late", Alias: "canary", Version: 1, Expect: registry.AnyVersion, Who: "op"}); err != nil {
			t.Fatal(err)
		}
	}
	got := <-ch
	if got.Err != nil || got.Epoch != 3 || got.Versions["canary"] != 1 {
		t.Fatalf("after 3 quick moves got %+v; want one change at epoch 3", got)
	}
	cancel()
	for range ch { // drains and ends: the channel closes after cancel
	}
	bad := reg.Watch(context.Background(), "no/slash")
	if got := <-bad; !errors.Is(got.Err, registry.ErrInvalid) {
		t.Fatalf("Watch of an invalid name: %+v; want ErrInvalid", got)
	}
	if _, open := <-bad; open {
		t.Fatal("Watch of an invalid name left its channel open")
	}
}
