// Package pyrand reproduces CPython's random.Random (the MT19937 Mersenne
// Twister, as seeded and consumed by Python 3.11's random module) bit for
// bit, so that learners which follow River can draw the same random numbers
// as River does from the same seed.
//
// Only what River's trees and forests use is provided: seeding from an
// integer, random(), getrandbits(k) for k ≤ 32, _randbelow(n), sample() over
// a population of indices, and River's utils.random.poisson.
//
// A Source is not safe for concurrent use.
package pyrand

import (
	"encoding/binary"
	"errors"
	"math"
)

const (
	n         = 624
	m         = 397
	matrixA   = 0x9908b0df
	upperMask = 0x80000000
	lowerMask = 0x7fffffff
)

// StateSize is the length in bytes of a Source's state (AppendState).
const StateSize = 4*n + 4

// Source is a Mersenne Twister seeded like Python's random.Random(seed).
type Source struct {
	mt  [n]uint32
	mti int
	// poissonRate and poissonL cache exp(−rate) for Poisson.
	poissonRate, poissonL float64
}

// New returns a Source in the state of Python's random.Random(seed).
func New(seed uint64) *Source {
	s := &Source{}
	s.Seed(seed)
	return s
}

// Seed resets the Source to the state of Python's random.Random(seed):
// init_by_array over the seed's 32-bit words, least significant first (one
// zero word for seed 0).
func (s *Source) Seed(seed uint64) {
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	s.initGenrand(19650218)
	i, j := 1, 0
	for k := max(n, len(key)); k > 0; k-- {
		s.mt[i] = (s.mt[i] ^ ((s.mt[i-1] ^ (s.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= n {
			s.mt[0] = s.mt[n-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := n - 1; k > 0; k-- {
		s.mt[i] = (s.mt[i] ^ ((s.mt[i-1] ^ (s.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= n {
			s.mt[0] = s.mt[n-1]
			i = 1
		}
	}
	s.mt[0] = 0x80000000
}

func (s *Source) initGenrand(seed uint32) {
	s.mt[0] = seed
	for i := 1; i < n; i++ {
		s.mt[i] = 1812433253*(s.mt[i-1]^(s.mt[i-1]>>30)) + uint32(i)
	}
	s.mti = n
}

// Uint32 is genrand_uint32: the next tempered 32-bit output.
func (s *Source) Uint32() uint32 {
	if s.mti >= n {
		var kk int
		for kk = 0; kk < n-m; kk++ {
			y := (s.mt[kk] & upperMask) | (s.mt[kk+1] & lowerMask)
			s.mt[kk] = s.mt[kk+m] ^ (y >> 1) ^ (-(y & 1) & matrixA)
		}
		for ; kk < n-1; kk++ {
			y := (s.mt[kk] & upperMask) | (s.mt[kk+1] & lowerMask)
			s.mt[kk] = s.mt[kk+(m-n)] ^ (y >> 1) ^ (-(y & 1) & matrixA)
		}
		y := (s.mt[n-1] & upperMask) | (s.mt[0] & lowerMask)
		s.mt[n-1] = s.mt[m-1] ^ (y >> 1) ^ (-(y & 1) & matrixA)
		s.mti = 0
	}
	y := s.mt[s.mti]
	s.mti++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Float64 is random(): a float in [0, 1) with 53 random bits.
func (s *Source) Float64() float64 {
	a, b := s.Uint32()>>5, s.Uint32()>>6
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// Bits is getrandbits(k) for 0 ≤ k ≤ 32.
func (s *Source) Bits(k int) uint32 {
	if k <= 0 {
		return 0
	}
	return s.Uint32() >> (32 - uint(k))
}

// Below is _randbelow(n) for 0 < n < 2^32: getrandbits(n.bit_length()),
// redrawn until it is below n.
func (s *Source) Below(bound int) int {
	k := 0
	for v := uint64(bound); v > 0; v >>= 1 {
		k++
	}
	r := int(s.Bits(k))
	for r >= bound {
		r = int(s.Bits(k))
	}
	return r
}

// Sample is random.sample(pool, k): it appends the k chosen items to dst[:0],
// in Python's order, and returns it. It uses pool as scratch (its contents
// are permuted). The caller ensures 0 ≤ k ≤ len(pool).
func (s *Source) Sample(dst, pool []int32, k int) []int32 {
	size := len(pool)
	dst = dst[:0]
	setsize := 21
	if k > 5 {
		setsize += int(math.Pow(4, math.Ceil(math.Log(float64(k*3))/math.Log(4))))
	}
	if size <= setsize {
		for i := range k {
			j := s.Below(size - i)
			dst = append(dst, pool[j])
			pool[j] = pool[size-i-1]
		}
		return dst
	}
	// Python keeps a set of the chosen positions; k is small here, so a
	// linear scan of dst's positions (kept in chosen) is enough.
	chosen := make([]int, 0, k)
	for range k {
		j := s.Below(size)
		for contains(chosen, j) {
			j = s.Below(size)
		}
		chosen = append(chosen, j)
		dst = append(dst, pool[j])
	}
	return dst
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Poisson is River's utils.random.poisson(rate, rng): Knuth's product of
// uniforms, drawing random() until the product falls to exp(−rate) or below.
func (s *Source) Poisson(rate float64) int {
	if rate != s.poissonRate || s.poissonL == 0 {
		s.poissonRate, s.poissonL = rate, math.Exp(-rate)
	}
	l := s.poissonL
	k, p := 0, 1.0
	for p > l {
		k++
		p *= s.Float64()
	}
	return k - 1
}

// AppendState appends the Source's state, StateSize bytes.
func (s *Source) AppendState(buf []byte) []byte {
	for _, v := range s.mt {
		buf = binary.LittleEndian.AppendUint32(buf, v)
	}
	return binary.LittleEndian.AppendUint32(buf, uint32(s.mti))
}

// ErrState reports a state that AppendState did not write.
var ErrState = errors.New("pyrand: bad state")

// SetState restores a state written by AppendState.
func (s *Source) SetState(state []byte) error {
	if len(state) != StateSize {
		return ErrState
	}
	var mt [n]uint32
	for i := range mt {
		mt[i] = binary.LittleEndian.Uint32(state[4*i:])
	}
	mti := int(binary.LittleEndian.Uint32(state[4*n:]))
	if mti > n {
		return ErrState
	}
	s.mt, s.mti = mt, mti
	return nil
}
