package app

import (
	"reflect"
	"unsafe"

	"github.com/alicebob/miniredis/v2"
)

// keyVersions bounds a miniredis limitation: a database keeps a version
// per key for WATCH (RedisDB.keyVersion, unexported) and never forgets
// one, even once its key is deleted or expired, so a demo that writes a
// few keys per event (dedupe, the prediction cache) would grow by an entry
// per key ever written. prune drops the versions of keys that no longer
// exist. That is safe for WATCH except for a key that is created and
// deleted again between a WATCH and its EXEC across a prune: the driftline
// processes watch registry keys, which exist while watched.
//
// It reaches the two maps by reflection (miniredis v2.40.0's layout); ok
// is false when that layout changed, and TestEmbeddedRedisForgetsKeyVersions
// fails then.
type keyVersions struct {
	mr *miniredis.Miniredis
	db *miniredis.RedisDB
	ok bool
}

func newKeyVersions(mr *miniredis.Miniredis, db int) keyVersions {
	kv := keyVersions{mr: mr, db: mr.DB(db)}
	keys, versions := kv.maps()
	kv.ok = keys != nil && versions != nil
	return kv
}

// maps returns the database's key types and key versions (nil when
// miniredis's layout changed). The caller holds the miniredis lock.
func (kv keyVersions) maps() (keys map[string]string, versions map[string]uint) {
	v := reflect.ValueOf(kv.db).Elem()
	k, ver := v.FieldByName("keys"), v.FieldByName("keyVersion")
	if !k.IsValid() || !ver.IsValid() || k.Type() != reflect.TypeFor[map[string]string]() || ver.Type() != reflect.TypeFor[map[string]uint]() {
		return nil, nil
	}
	return *(*map[string]string)(unsafe.Pointer(k.UnsafeAddr())), *(*map[string]uint)(unsafe.Pointer(ver.UnsafeAddr()))
}

// prune drops the versions of the keys that no longer exist, and returns
// how many versions are left.
func (kv keyVersions) prune() int {
	if !kv.ok {
		return -1
	}
	kv.mr.Lock()
	defer kv.mr.Unlock()
	keys, versions := kv.maps()
	for k := range versions {
		if _, ok := keys[k]; !ok {
			delete(versions, k)
		}
	}
	return len(versions)
}
