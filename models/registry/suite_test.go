package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
		{"TrafficShare", testTrafficShare},
		{"Lease", testLease},
		{"LeaseExpires", testLeaseExpires},
		{"LeaseEpoch", testLeaseEpoch},
		{"OutcomesSum", testOutcomesSum},
		{"OutcomesInvalid", testOutcomesInvalid},
		{"RetrainQueue", testRetrainQueue},
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
	// Backwards in pages of 3, before is exclusive too: the same events, newest first.
	var back []registry.Event
	for before := ""; ; {
		page, err := reg.ReadAuditBefore(ctx, before, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		back = append(back, page...)
		before = page[len(page)-1].ID
	}
	if len(back) != len(want) {
		t.Fatalf("audit read backwards has %d events; want %d", len(back), len(want))
	}
	for i := range back {
		back[i].ID = ""
		if !reflect.DeepEqual(back[i], want[len(want)-1-i]) {
			t.Errorf("backwards event %d\n got %+v\nwant %+v", i, back[i], want[len(want)-1-i])
		}
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

// testTrafficShare checks that SetTraffic is audited, bumps the alias epoch and reaches
// a watcher, and that bad input and stored garbage are reported.
func testTrafficShare(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, c := newRegistry(t, r, registry.Config{Prefix: "{traffic}", WatchInterval: 10 * time.Millisecond})
	set := func(pct int) (int64, error) {
		return reg.SetTraffic(ctx, registry.TrafficMove{Model: "m", Percent: pct, Who: "rollout", Why: "step",
			Details: map[string]string{"step": "1", "from": "forged"}})
	}
	if _, err := set(10); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("SetTraffic on missing model: %v; want ErrNotFound", err)
	}
	if _, err := reg.Register(ctx, registration("m", "alice", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: "m", Alias: "canary", Version: 1, Who: "op"}); err != nil {
		t.Fatal(err)
	}
	a, err := reg.Aliases(ctx, "m")
	if err != nil || a.TrafficSet || a.CanaryPercent != 0 || a.Epoch != 1 {
		t.Fatalf("before SetTraffic: %+v, %v; want traffic unset at epoch 1", a, err)
	}
	for _, m := range []registry.TrafficMove{
		{Model: "m", Percent: -1, Who: "x"},
		{Model: "m", Percent: 101, Who: "x"},
		{Model: "m", Percent: 5},
		{Model: "a:b", Percent: 5, Who: "x"},
	} {
		if _, err := reg.SetTraffic(ctx, m); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("SetTraffic(%+v): %v; want ErrInvalid", m, err)
		}
	}

	ch := reg.Watch(ctx, "m")
	if first := <-ch; first.Err != nil || first.Epoch != 1 || first.TrafficSet {
		t.Fatalf("first snapshot %+v", first)
	}
	epoch, err := set(25)
	if err != nil || epoch != 2 {
		t.Fatalf("SetTraffic 25 = %d, %v; want epoch 2", epoch, err)
	}
	select {
	case got := <-ch:
		if got.Err != nil || got.Epoch != 2 || !got.TrafficSet || got.CanaryPercent != 25 || got.Versions["canary"] != 1 {
			t.Fatalf("Watch after SetTraffic: %+v; want epoch 2, canary 1 at 25%%", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not deliver the traffic change")
	}
	// The same share again writes nothing; a new one is a new event.
	if epoch, err := set(25); err != nil || epoch != 2 {
		t.Fatalf("SetTraffic 25 again = %d, %v; want epoch 2 unchanged", epoch, err)
	}
	if epoch, err := set(0); err != nil || epoch != 3 {
		t.Fatalf("SetTraffic 0 = %d, %v; want epoch 3", epoch, err)
	}
	a, err = reg.Aliases(ctx, "m")
	if err != nil || !a.TrafficSet || a.CanaryPercent != 0 || a.Epoch != 3 {
		t.Fatalf("after SetTraffic 0: %+v, %v; want traffic set to 0 at epoch 3", a, err)
	}
	evs, err := reg.ReadAudit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []registry.Event
	for _, e := range evs {
		if e.What == registry.WhatTrafficSet {
			e.ID = ""
			got = append(got, e)
		}
	}
	want := []registry.Event{
		{Who: "rollout", What: registry.WhatTrafficSet, Model: "m", Why: "step", When: t0,
			Details: map[string]string{"from": "0", "to": "25", "epoch": "2", "step": "1"}},
		{Who: "rollout", What: registry.WhatTrafficSet, Model: "m", Why: "step", When: t0,
			Details: map[string]string{"from": "25", "to": "0", "epoch": "3", "step": "1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("traffic audit events\n got %+v\nwant %+v", got, want)
	}

	for _, bad := range []string{"abc", "101", "-5", "2.5"} {
		if err := c.HSet(ctx, "{traffic}:m:m", "canary_percent", bad).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Aliases(ctx, "m"); !errors.Is(err, registry.ErrCorrupt) {
			t.Errorf("Aliases with canary_percent %q: %v; want ErrCorrupt", bad, err)
		}
		if _, err := set(30); !errors.Is(err, registry.ErrCorrupt) {
			t.Errorf("SetTraffic over canary_percent %q: %v; want ErrCorrupt", bad, err)
		}
	}
	if n, err := c.XLen(ctx, "{traffic}:audit").Result(); err != nil || n != int64(len(evs)) {
		t.Fatalf("audit has %d events (%v) after failed SetTraffic calls; want %d", n, err, len(evs))
	}
}

func testLease(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, c := newRegistry(t, r, registry.Config{Prefix: "{lease}"})
	other, _ := newRegistry(t, r, registry.Config{Prefix: "{lease}"})
	for _, tc := range []struct {
		name, holder string
		ttl          time.Duration
	}{
		{"m", "a", 0},
		{"m", "a", time.Microsecond},
		{"m", "", time.Second},
		{"a:b", "a", time.Second},
	} {
		if _, err := reg.TryLease(ctx, tc.name, tc.holder, tc.ttl); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("TryLease(%+v): %v; want ErrInvalid", tc, err)
		}
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("invalid TryLease calls left %d keys (%v)", n, err)
	}
	if h, err := reg.LeaseHolder(ctx, "m"); err != nil || h != "" {
		t.Fatalf("LeaseHolder of a free lease = %q, %v", h, err)
	}

	// Two holders race for the lease many times; exactly one wins each round.
	for round := range 20 {
		name := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		held := make([]bool, 2)
		errs := make([]error, 2)
		for i, rg := range []*registry.Registry{reg, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				held[i], errs[i] = rg.TryLease(ctx, name, fmt.Sprintf("holder-%d", i), time.Minute)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || held[0] == held[1] {
			t.Fatalf("round %d: held %v, errors %v; want exactly one holder", round, held, errs)
		}
		winner := 0
		if held[1] {
			winner = 1
		}
		if h, err := reg.LeaseHolder(ctx, name); err != nil || h != fmt.Sprintf("holder-%d", winner) {
			t.Fatalf("round %d: LeaseHolder = %q, %v; want holder-%d", round, h, err, winner)
		}
	}

	if held, err := reg.TryLease(ctx, "m", "a", time.Second); err != nil || !held {
		t.Fatalf("a takes free lease: %v, %v", held, err)
	}
	if held, err := other.TryLease(ctx, "m", "b", time.Second); err != nil || held {
		t.Fatalf("b takes a's lease: %v, %v; want false", held, err)
	}
	// Renewal extends the lease.
	if held, err := reg.TryLease(ctx, "m", "a", time.Hour); err != nil || !held {
		t.Fatalf("a renews: %v, %v", held, err)
	}
	if ttl, err := c.PTTL(ctx, "{lease}:lease:m").Result(); err != nil || ttl <= time.Second || ttl > time.Hour {
		t.Fatalf("lease TTL after renewal %s, %v; want in (1s, 1h]", ttl, err)
	}
	// Release by a non-holder does nothing.
	if err := other.ReleaseLease(ctx, "m", "b"); err != nil {
		t.Fatalf("b releases a's lease: %v", err)
	}
	if h, err := reg.LeaseHolder(ctx, "m"); err != nil || h != "a" {
		t.Fatalf("after b's release LeaseHolder = %q, %v; want a", h, err)
	}
	if err := reg.ReleaseLease(ctx, "m", "a"); err != nil {
		t.Fatal(err)
	}
	if h, err := reg.LeaseHolder(ctx, "m"); err != nil || h != "" {
		t.Fatalf("after a's release LeaseHolder = %q, %v; want free", h, err)
	}
	if held, err := other.TryLease(ctx, "m", "b", time.Second); err != nil || !held {
		t.Fatalf("b takes released lease: %v, %v", held, err)
	}
	if err := reg.ReleaseLease(ctx, "m", ""); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("ReleaseLease without holder: %v; want ErrInvalid", err)
	}
}

// testLeaseExpires checks that a lease that is not renewed runs out after its ttl, and
// that a renewal restarts the ttl. miniredis expires keys only when told to move time.
func testLeaseExpires(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, _ := newRegistry(t, r, registry.Config{Prefix: "{lease}"})
	const ttl = 50 * time.Millisecond
	elapse := func(d time.Duration) {
		if r.Mini != nil {
			r.Mini.FastForward(d)
		} else {
			time.Sleep(d)
		}
	}
	if held, err := reg.TryLease(ctx, "m", "a", ttl); err != nil || !held {
		t.Fatalf("a takes lease: %v, %v", held, err)
	}
	// a renews for long; b must still fail once the first ttl has passed.
	if held, err := reg.TryLease(ctx, "m", "a", time.Hour); err != nil || !held {
		t.Fatalf("a renews: %v, %v", held, err)
	}
	elapse(2 * ttl)
	if held, err := reg.TryLease(ctx, "m", "b", ttl); err != nil || held {
		t.Fatalf("b takes a's renewed lease: %v, %v; want false", held, err)
	}
	// a shortens it to ttl and stops renewing; b gets it once it runs out.
	if held, err := reg.TryLease(ctx, "m", "a", ttl); err != nil || !held {
		t.Fatalf("a renews short: %v, %v", held, err)
	}
	if held, err := reg.TryLease(ctx, "m", "b", time.Minute); err != nil || held {
		t.Fatalf("b takes a's lease before it ran out: %v, %v; want false", held, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		elapse(ttl)
		held, err := reg.TryLease(ctx, "m", "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never got the lease after a's ran out")
		}
	}
	if h, err := reg.LeaseHolder(ctx, "m"); err != nil || h != "b" {
		t.Fatalf("LeaseHolder = %q, %v; want b", h, err)
	}
	if held, err := reg.TryLease(ctx, "m", "a", ttl); err != nil || held {
		t.Fatalf("a retakes b's lease: %v, %v; want false", held, err)
	}
}

func closeRel(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func sameSums(a, b registry.OutcomeSums) bool {
	return a.N == b.N && a.Correct == b.Correct && a.Positives == b.Positives &&
		closeRel(a.LogLoss, b.LogLoss) && closeRel(a.LogLossSq, b.LogLossSq) &&
		closeRel(a.AbsErr, b.AbsErr) && closeRel(a.AbsErrSq, b.AbsErrSq) &&
		closeRel(a.SqErr, b.SqErr) && closeRel(a.SqErrSq, b.SqErrSq) &&
		a.Paired.N == b.Paired.N && a.Paired.CorrectDiff == b.Paired.CorrectDiff && a.Paired.CorrectDiffSq == b.Paired.CorrectDiffSq &&
		closeRel(a.Paired.LogLossDiff, b.Paired.LogLossDiff) && closeRel(a.Paired.LogLossDiffSq, b.Paired.LogLossDiffSq) &&
		closeRel(a.Paired.AbsErrDiff, b.Paired.AbsErrDiff) && closeRel(a.Paired.AbsErrDiffSq, b.Paired.AbsErrDiffSq) &&
		closeRel(a.Paired.SqErrDiff, b.Paired.SqErrDiff) && closeRel(a.Paired.SqErrDiffSq, b.Paired.SqErrDiffSq)
}

// testOutcomesSum has two registries on separate connections add outcome deltas to two
// versions concurrently and checks the totals.
func testOutcomesSum(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	const adders, each = 2, 100
	reg, c := newRegistry(t, r, registry.Config{Prefix: "{out}"})
	delta := func(w, i int) registry.OutcomeSums {
		x := float64(w*each+i+1) / 7 // not exactly representable in binary
		return registry.OutcomeSums{N: int64(i%3 + 1), Correct: int64(i % 2), Positives: 1,
			LogLoss: x, LogLossSq: x * x, AbsErr: x / 3, AbsErrSq: x * x / 9, SqErr: x * x / 9, SqErrSq: x * x * x * x / 81,
			// Differences of either sign, so their sums go below zero and back.
			Paired: registry.PairedSums{N: 1, CorrectDiff: int64(i%3 - 1), CorrectDiffSq: int64((i%3 - 1) * (i%3 - 1)),
				LogLossDiff: x * float64(i%3-1), LogLossDiffSq: x * x, AbsErrDiff: -x / 5, AbsErrDiffSq: x * x / 25,
				SqErrDiff: x / 11, SqErrDiffSq: x * x / 121}}
	}
	var want [2]registry.OutcomeSums
	for w := range adders {
		for i := range each {
			want[0] = want[0].Add(delta(w, i))
			if i%2 == 0 {
				want[1] = want[1].Add(delta(w, i))
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, adders)
	for w := range adders {
		rg, _ := newRegistry(t, r, registry.Config{Prefix: "{out}"})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d := map[string]registry.OutcomeSums{"1": delta(w, i), "2": {}}
				if i%2 == 0 {
					d["2"] = delta(w, i)
				}
				if err := rg.AddOutcomes(ctx, "m", d); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, v := range []string{"1", "2"} {
		got, err := reg.Outcomes(ctx, "m", v)
		if err != nil || !sameSums(got, want[i]) {
			t.Fatalf("Outcomes of version %s = %+v, %v\nwant %+v", v, got, err, want[i])
		}
		ttl, err := c.PTTL(ctx, "{out}:m:m:outcomes:"+v).Result()
		if err != nil || ttl <= registry.OutcomeTTL-time.Hour || ttl > registry.OutcomeTTL {
			t.Fatalf("outcomes of version %s TTL %s, %v; want about %s", v, ttl, err, registry.OutcomeTTL)
		}
	}
	if got, err := reg.Outcomes(ctx, "m", "3"); err != nil || got != (registry.OutcomeSums{}) {
		t.Fatalf("Outcomes of a version without any = %+v, %v; want zero", got, err)
	}
	// A zero delta creates nothing.
	if err := reg.AddOutcomes(ctx, "m", map[string]registry.OutcomeSums{"9": {}}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, "{out}:m:m:outcomes:9").Result(); err != nil || n != 0 {
		t.Fatalf("zero delta created the key (%d, %v)", n, err)
	}
	// Sub gives what was added in between.
	before, _ := reg.Outcomes(ctx, "m", "1")
	d := registry.OutcomeSums{N: 2, Correct: 1, LogLoss: 0.5, LogLossSq: 0.25}
	if err := reg.AddOutcomes(ctx, "m", map[string]registry.OutcomeSums{"1": d}); err != nil {
		t.Fatal(err)
	}
	after, _ := reg.Outcomes(ctx, "m", "1")
	if diff := after.Sub(before); diff.N != 2 || diff.Correct != 1 || math.Abs(diff.LogLoss-0.5) > 1e-9 {
		t.Fatalf("after - before = %+v; want %+v", diff, d)
	}
	if err := c.HSet(ctx, "{out}:m:m:outcomes:1", "logloss", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Outcomes(ctx, "m", "1"); !errors.Is(err, registry.ErrCorrupt) {
		t.Fatalf("Outcomes with a garbled sum: %v; want ErrCorrupt", err)
	}
}

func testOutcomesInvalid(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, c := newRegistry(t, r, registry.Config{})
	ok := registry.OutcomeSums{N: 1, Correct: 1, LogLoss: 0.1}
	long := string(bytes.Repeat([]byte("v"), registry.MaxOutcomeVersionLen+1))
	for name, tc := range map[string]struct {
		model string
		d     map[string]registry.OutcomeSums
	}{
		"bad model":      {"a:b", map[string]registry.OutcomeSums{"1": ok}},
		"empty version":  {"m", map[string]registry.OutcomeSums{"1": ok, "": ok}},
		"long version":   {"m", map[string]registry.OutcomeSums{"1": ok, long: ok}},
		"NaN":            {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, AbsErr: math.NaN()}}},
		"Inf":            {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, SqErrSq: math.Inf(1)}}},
		"negative sum":   {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, LogLoss: -1}}},
		"negative count": {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: -1}}},
		"more correct":   {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, Correct: 2}}},
		"more positives": {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, Positives: 2}}},
		"more pairs":     {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, Paired: registry.PairedSums{N: 2}}}},
		"pair d > d²":    {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, Paired: registry.PairedSums{N: 1, CorrectDiff: -1}}}},
		"negative d²":    {"m", map[string]registry.OutcomeSums{"1": ok, "2": {N: 1, Paired: registry.PairedSums{N: 1, LogLossDiffSq: -1}}}},
	} {
		if err := reg.AddOutcomes(ctx, tc.model, tc.d); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: AddOutcomes: %v; want ErrInvalid", name, err)
		}
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("invalid AddOutcomes calls left %d keys (%v)", n, err)
	}
	if _, err := reg.Outcomes(ctx, "m", long); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Outcomes of a long version: %v; want ErrInvalid", err)
	}
}

// testLeaseEpoch checks the fencing token: a lease's epoch grows each time
// a holder takes it (after a release or an expiry), stays while the
// holder renews, and is 0 for a holder that does not hold the lease.
func testLeaseEpoch(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	reg, _ := newRegistry(t, r, registry.Config{Prefix: "{epoch}"})
	try := func(holder string, ttl time.Duration, want int64) {
		t.Helper()
		if got, err := reg.TryLeaseEpoch(ctx, "m", holder, ttl); err != nil || got != want {
			t.Fatalf("TryLeaseEpoch(%s) = %d, %v; want %d", holder, got, err, want)
		}
	}
	try("a", time.Minute, 1)
	try("a", time.Minute, 1) // a renewal keeps the epoch
	try("b", time.Minute, 0)
	if err := reg.ReleaseLease(ctx, "m", "a"); err != nil {
		t.Fatal(err)
	}
	try("b", 50*time.Millisecond, 2)
	try("a", time.Minute, 0)
	// b stops renewing; the next holder after the expiry gets a new epoch.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r.Mini != nil {
			r.Mini.FastForward(50 * time.Millisecond)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
		got, err := reg.TryLeaseEpoch(ctx, "m", "a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got != 0 {
			if got != 3 {
				t.Fatalf("a took the expired lease with epoch %d, want 3", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never got the lease after b's ran out")
		}
	}
	// A plain TryLease takes part in the same count.
	if err := reg.ReleaseLease(ctx, "m", "a"); err != nil {
		t.Fatal(err)
	}
	if held, err := reg.TryLease(ctx, "m", "b", time.Minute); err != nil || !held {
		t.Fatalf("b takes the lease: %v, %v", held, err)
	}
	try("b", time.Minute, 4)
	// Another lease counts its own epochs.
	if got, err := reg.TryLeaseEpoch(ctx, "n", "a", time.Minute); err != nil || got != 1 {
		t.Fatalf("the first holding of lease n has epoch %d, %v; want 1", got, err)
	}
}

// testRetrainQueue: a trigger queued by several instances is queued once,
// with the first one's Since; the queue lists undone triggers oldest first;
// a finished trigger is not listed, is not queued again while it is
// retained, and is deleted after RetainDoneRetrains.
func testRetrainQueue(t *testing.T, r *redistest.Redis) {
	ctx := ctxT(t)
	now := t0
	reg, c := newRegistry(t, r, registry.Config{Prefix: "{retrains}", Now: func() time.Time { return now }})
	queue := func(key string, since time.Time, want bool) {
		t.Helper()
		added, err := reg.QueueRetrain(ctx, "m", registry.QueuedRetrain{Kind: "drift", Key: key, Reason: "why " + key, Since: since})
		if err != nil || added != want {
			t.Fatalf("QueueRetrain(%s) = %v, %v; want %v", key, added, err, want)
		}
	}
	keys := func() (ks []string) {
		t.Helper()
		qs, err := reg.QueuedRetrains(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			ks = append(ks, q.Key+"@"+strconv.FormatInt(q.Since.Unix()-t0.Unix(), 10))
		}
		return ks
	}
	queue("b", t0.Add(2*time.Second), true)
	queue("a", t0.Add(time.Second), true)
	queue("b", t0.Add(5*time.Second), false) // another instance, later
	if got := keys(); !slices.Equal(got, []string{"a@1", "b@2"}) {
		t.Fatalf("queue %q, want a@1 b@2", got)
	}
	if err := reg.FinishRetrain(ctx, "m", "a"); err != nil {
		t.Fatal(err)
	}
	if err := reg.FinishRetrain(ctx, "m", "never-queued"); err != nil {
		t.Fatalf("finishing a trigger that was never queued: %v", err)
	}
	queue("a", t0.Add(3*time.Second), false) // a late instance sees the alert
	if got := keys(); !slices.Equal(got, []string{"b@2"}) {
		t.Fatalf("queue after a finished %q, want b@2", got)
	}
	now = t0.Add(registry.RetainDoneRetrains + time.Minute)
	if got := keys(); !slices.Equal(got, []string{"b@2"}) {
		t.Fatalf("queue %q, want b@2", got)
	}
	if n, err := c.HLen(ctx, "{retrains}:m:m:retrains").Result(); err != nil || n != 1 {
		t.Fatalf("%d entries (%v) after the retention, want the finished one deleted", n, err)
	}
	if _, err := reg.QueueRetrain(ctx, "m", registry.QueuedRetrain{Kind: "drift"}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("a trigger without a key: %v, want ErrInvalid", err)
	}
	if err := c.HSet(ctx, "{retrains}:m:m:retrains", "bad", "{").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.QueuedRetrains(ctx, "m"); !errors.Is(err, registry.ErrCorrupt) {
		t.Fatalf("an entry that does not decode: %v, want ErrCorrupt", err)
	}
}
