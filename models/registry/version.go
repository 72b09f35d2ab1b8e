package registry

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tensor describes one input or output of a model.
type Tensor struct {
	Name  string `json:"name" yaml:"name"`
	DType string `json:"dtype" yaml:"dtype"` // e.g. "float32", "int64", "string"
	// Shape lists the dimensions; -1 marks a dynamic one (such as the batch).
	Shape []int64 `json:"shape" yaml:"shape"`
}

// Signature is the inputs and outputs of a model version.
type Signature struct {
	Inputs  []Tensor `json:"inputs" yaml:"inputs"`
	Outputs []Tensor `json:"outputs" yaml:"outputs"`
}

// Validate requires at least one input and one output, unique non-empty names within
// each list, a dtype on each tensor and dimensions ≥ -1.
func (s Signature) Validate() error {
	for _, side := range []struct {
		what string
		ts   []Tensor
	}{{"input", s.Inputs}, {"output", s.Outputs}} {
		if len(side.ts) == 0 {
			return fmt.Errorf("%w: signature has no %ss", ErrInvalid, side.what)
		}
		seen := make(map[string]bool, len(side.ts))
		for i, t := range side.ts {
			if t.Name == "" || t.DType == "" {
				return fmt.Errorf("%w: signature %s %d needs a name and a dtype", ErrInvalid, side.what, i)
			}
			if seen[t.Name] {
				return fmt.Errorf("%w: signature %s %q appears twice", ErrInvalid, side.what, t.Name)
			}
			seen[t.Name] = true
			for _, d := range t.Shape {
				if d < -1 {
					return fmt.Errorf("%w: signature %s %q has dimension %d", ErrInvalid, side.what, t.Name, d)
				}
			}
		}
	}
	return nil
}

// PartitionRange is the half-open offset range [From, To) of one partition that a
// version learned from.
type PartitionRange struct {
	Partition int32 `json:"partition" yaml:"partition"`
	From      int64 `json:"from" yaml:"from"`
	To        int64 `json:"to" yaml:"to"`
}

// Source is the data a version learned from: a topic with offset ranges per partition,
// a time range, or both. The zero Source means "not recorded" (a model brought by a user).
type Source struct {
	Topic      string           `json:"topic,omitempty" yaml:"topic"`
	Partitions []PartitionRange `json:"partitions,omitempty" yaml:"partitions"`
	From       time.Time        `json:"from,omitzero" yaml:"from"`
	To         time.Time        `json:"to,omitzero" yaml:"to"`
}

// Lineage records where a version comes from.
type Lineage struct {
	// Parent is the version of the same model this one was warm-started or retrained
	// from; 0 for none. It must exist when the version is registered.
	Parent   int64  `json:"parent,omitempty" yaml:"parent"`
	SpecHash string `json:"spec_hash,omitempty" yaml:"spec_hash"`
	Source   Source `json:"source" yaml:"source"`
	// Profile is the reference feature profile, opaque to the registry; it must be
	// valid JSON when set.
	Profile json.RawMessage `json:"profile,omitempty" yaml:"profile"`
	// Metrics are the version's metrics at registration; values must be finite.
	Metrics map[string]float64 `json:"metrics,omitempty" yaml:"metrics"`
}

// Validate checks the lineage on its own; Register also checks that Parent exists.
func (l Lineage) Validate() error {
	if l.Parent < 0 {
		return fmt.Errorf("%w: parent version %d", ErrInvalid, l.Parent)
	}
	s := l.Source
	if len(s.Partitions) > 0 && s.Topic == "" {
		return fmt.Errorf("%w: source partitions without a topic", ErrInvalid)
	}
	for _, p := range s.Partitions {
		if p.Partition < 0 || p.From < 0 || p.To < p.From {
			return fmt.Errorf("%w: source partition %d range [%d, %d)", ErrInvalid, p.Partition, p.From, p.To)
		}
	}
	if !s.From.IsZero() && !s.To.IsZero() && s.To.Before(s.From) {
		return fmt.Errorf("%w: source time range ends before it starts", ErrInvalid)
	}
	if len(l.Profile) > 0 && !json.Valid(l.Profile) {
		return fmt.Errorf("%w: reference profile is not valid JSON", ErrInvalid)
	}
	for k, v := range l.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: metric %q is %v", ErrInvalid, k, v)
		}
	}
	return nil
}

// ArtifactKind names one of a version's artifacts.
type ArtifactKind string

// Artifact kinds.
const (
	ArtifactSnapshot ArtifactKind = "snapshot" // learner snapshot (models.Learner MarshalBinary)
	ArtifactONNX     ArtifactKind = "onnx"     // ONNX model bytes
)

// Artifact describes stored artifact bytes. The zero value means "absent".
type Artifact struct {
	SHA256 string `json:"sha256" yaml:"sha256"` // lowercase hex
	Size   int64  `json:"size" yaml:"size"`
}

// Version is one registered, immutable model version.
type Version struct {
	Model     string    `json:"-"`
	Number    int64     `json:"-"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	Signature Signature `json:"signature"`
	Lineage   Lineage   `json:"lineage"`
	Snapshot  Artifact  `json:"snapshot,omitzero"`
	ONNX      Artifact  `json:"onnx,omitzero"`
}

func (v Version) artifact(kind ArtifactKind) Artifact {
	if kind == ArtifactSnapshot {
		return v.Snapshot
	}
	return v.ONNX
}

// Registration is what Register needs to add a version.
type Registration struct {
	Model     string
	Signature Signature
	Lineage   Lineage
	// Snapshot and ONNX are the artifacts; at least one must be non-empty. The registry
	// keeps its own copy of neither: the bytes are sent to Redis during Register.
	Snapshot []byte
	ONNX     []byte
	// Who registers (required) and Why, for the audit event.
	Who string
	Why string
}

// Validate checks r without I/O.
func (r Registration) Validate() error {
	if err := checkName("model", r.Model); err != nil {
		return err
	}
	if r.Who == "" {
		return fmt.Errorf("%w: registration without who", ErrInvalid)
	}
	if len(r.Snapshot) == 0 && len(r.ONNX) == 0 {
		return fmt.Errorf("%w: registration without artifacts", ErrInvalid)
	}
	if err := r.Signature.Validate(); err != nil {
		return err
	}
	return r.Lineage.Validate()
}

func describe(b []byte) Artifact {
	if len(b) == 0 {
		return Artifact{}
	}
	sum := sha256.Sum256(b)
	return Artifact{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// registerScript atomically numbers and stores a version and appends its audit event.
//
//	KEYS: model hash, versions, artifacts, models set, audit stream
//	ARGV: model name, parent, metadata JSON, snapshot, onnx, audit max length,
//	      then the audit event as field/value pairs, to which "version" is appended
//
// Returns {status, version}.
var registerScript = redis.NewScript(`
local parent = tonumber(ARGV[2])
if parent > 0 and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {2, 0} end
local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[2], tostring(n), ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], n .. '/snapshot', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], n .. '/onnx', ARGV[5]) end
redis.call('SADD', KEYS[4], ARGV[1])
local ev = {}
for i = 7, #ARGV do ev[#ev + 1] = ARGV[i] end
ev[#ev + 1] = 'version'
ev[#ev + 1] = tostring(n)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(ev))
return {0, n}
`)

// Register adds a version of reg.Model, creating the model on its first version, and
// returns it with its number. Numbers start at 1 and increase by one per registration,
// with no gaps, across all instances. The version, its artifacts and a "register" audit
// event are written atomically. It fails with ErrInvalid for a bad registration and
// ErrNotFound when Lineage.Parent is not a version of the model.
func (r *Registry) Register(ctx context.Context, reg Registration) (Version, error) {
	if err := reg.Validate(); err != nil {
		return Version{}, err
	}
	v := Version{
		Model: reg.Model, Created: r.now(), CreatedBy: reg.Who,
		Signature: reg.Signature, Lineage: reg.Lineage,
		Snapshot: describe(reg.Snapshot), ONNX: describe(reg.ONNX),
	}
	meta, err := json.Marshal(v)
	if err != nil {
		return Version{}, fmt.Errorf("registry: encode version: %w", err)
	}
	ev := Event{Who: reg.Who, What: WhatRegister, Model: reg.Model, Why: reg.Why, When: v.Created}
	if reg.Lineage.Parent > 0 {
		ev.Details = map[string]string{"parent": strconv.FormatInt(reg.Lineage.Parent, 10)}
	}
	k := r.modelKeys(reg.Model)
	args := append([]any{reg.Model, reg.Lineage.Parent, meta, reg.Snapshot, reg.ONNX, r.cfg.AuditMaxLen}, ev.fields()...)
	status, n, err := r.runScript(ctx, registerScript,
		[]string{k.model, k.versions, k.artifacts, r.modelsKey(), r.auditKey()}, args...)
	if err != nil {
		return Version{}, fmt.Errorf("registry: register %s: %w", reg.Model, err)
	}
	if status != statusOK {
		return Version{}, fmt.Errorf("%w: parent version %d of model %s", ErrNotFound, reg.Lineage.Parent, reg.Model)
	}
	v.Number = n
	return v, nil
}

// Models returns the names of all registered models, sorted.
func (r *Registry) Models(ctx context.Context) ([]string, error) {
	names, err := r.rdb.SMembers(ctx, r.modelsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: list models: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// Version returns the metadata of version n of model.
func (r *Registry) Version(ctx context.Context, model string, n int64) (Version, error) {
	if err := checkName("model", model); err != nil {
		return Version{}, err
	}
	raw, err := r.rdb.HGet(ctx, r.modelKeys(model).versions, strconv.FormatInt(n, 10)).Result()
	if errors.Is(err, redis.Nil) {
		return Version{}, fmt.Errorf("%w: version %d of model %s", ErrNotFound, n, model)
	}
	if err != nil {
		return Version{}, fmt.Errorf("registry: read version %d of %s: %w", n, model, err)
	}
	return decodeVersion(model, n, raw)
}

// Versions returns the metadata of every version of model, oldest first, or ErrNotFound
// when the model has none.
func (r *Registry) Versions(ctx context.Context, model string) ([]Version, error) {
	if err := checkName("model", model); err != nil {
		return nil, err
	}
	all, err := r.rdb.HGetAll(ctx, r.modelKeys(model).versions).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: list versions of %s: %w", model, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: model %s", ErrNotFound, model)
	}
	out := make([]Version, 0, len(all))
	for field, raw := range all {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: version field %q of model %s", ErrCorrupt, field, model)
		}
		v, err := decodeVersion(model, n, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Version) int { return cmp.Compare(a.Number, b.Number) })
	return out, nil
}

func decodeVersion(model string, n int64, raw string) (Version, error) {
	var v Version
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return Version{}, fmt.Errorf("%w: version %d of model %s: %w", ErrCorrupt, n, model, err)
	}
	v.Model, v.Number = model, n
	return v, nil
}

// Artifact returns the artifact bytes of version n of model after checking them
// against the sha256 and size recorded at registration. It fails with ErrNotFound when
// the version or that artifact does not exist, and ErrCorrupt when the bytes differ.
func (r *Registry) Artifact(ctx context.Context, model string, n int64, kind ArtifactKind) ([]byte, error) {
	if kind != ArtifactSnapshot && kind != ArtifactONNX {
		return nil, fmt.Errorf("%w: artifact kind %q", ErrInvalid, kind)
	}
	v, err := r.Version(ctx, model, n)
	if err != nil {
		return nil, err
	}
	want := v.artifact(kind)
	if want.Size == 0 {
		return nil, fmt.Errorf("%w: version %d of model %s has no %s artifact", ErrNotFound, n, model, kind)
	}
	b, err := r.rdb.HGet(ctx, r.modelKeys(model).artifacts, strconv.FormatInt(n, 10)+"/"+string(kind)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s artifact of version %d of model %s is missing", ErrCorrupt, kind, n, model)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read %s artifact of version %d of %s: %w", kind, n, model, err)
	}
	if got := describe(b); got != want {
		return nil, fmt.Errorf("%w: %s artifact of version %d of model %s has sha256 %s (%d bytes), registered %s (%d bytes)",
			ErrCorrupt, kind, n, model, got.SHA256, got.Size, want.SHA256, want.Size)
	}
	return b, nil
}
