package stages

// hashSet is a set of 64-bit hashes for one batch: open addressing with
// linear probing, at most half full, cleared by reset. A hash's low bit is
// not kept (h and h^1 are one member), so has may answer true for a hash
// never added, with the odds of two keys' 63-bit hashes colliding; callers
// use it only where a false true costs time, never an answer. A hashSet is
// used by one goroutine at a time.
type hashSet struct {
	slots []uint64 // h|1 per member, 0 when free
}

// reset empties the set, sized for up to n members.
func (s *hashSet) reset(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if cap(s.slots) < size {
		s.slots = make([]uint64, size)
		return
	}
	s.slots = s.slots[:size]
	clear(s.slots)
}

// add puts h in the set; the set must have room (reset's n).
func (s *hashSet) add(h uint64) {
	h |= 1
	mask := uint64(len(s.slots) - 1)
	for i := (h >> 1) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			return
		case h:
			return
		}
	}
}

// has reports whether h is in the set (see the type's note on false trues).
func (s *hashSet) has(h uint64) bool {
	h |= 1
	mask := uint64(len(s.slots) - 1)
	for i := (h >> 1) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return false
		case h:
			return true
		}
	}
}
