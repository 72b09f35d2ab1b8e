package rollout

import "math/bits"

// Bucket returns key's stable bucket in [0, 100): FNV-1a (64 bit) of the key, mixed by
// the MurmurHash3 finalizer so that similar keys spread evenly, then scaled to 100 by a
// multiply-shift. The result depends only on the key bytes and never changes between
// releases, processes or machines. It does not allocate.
func Bucket(key []byte) int {
	h := uint64(14695981039346656037)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	hi, _ := bits.Mul64(h, 100)
	return int(hi)
}

// InCanary reports whether key (an entity or event id) is routed to the canary at
// percent, clamped to [0, 100]. It is sticky: a key keeps its arm for a given percent,
// and a key in the canary stays there when percent grows. Over many distinct keys the
// canary share converges to percent.
func InCanary(key []byte, percent int) bool {
	return Bucket(key) < percent
}
