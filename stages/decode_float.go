package stages

import (
	"math"
	"math/bits"
)

// pow10Mant holds the 128-bit mantissas of 10^-e for e in 0..22, the
// decimals the decoder's fast paths take: truncated, scaled so that the
// high bit is set, as in Go's internal/strconv pow10Tab (generated there by
// pow10gen.go; TestPow10MantMatchesBigRat recomputes them).
var pow10Mant = [...][2]uint64{
	{0x8000000000000000, 0x0000000000000000}, // 1e0
	{0xcccccccccccccccc, 0xcccccccccccccccc}, // 1e-1
	{0xa3d70a3d70a3d70a, 0x3d70a3d70a3d70a3}, // 1e-2
	{0x83126e978d4fdf3b, 0x645a1cac083126e9}, // 1e-3
	{0xd1b71758e219652b, 0xd3c36113404ea4a8}, // 1e-4
	{0xa7c5ac471b478423, 0x0fcf80dc33721d53}, // 1e-5
	{0x8637bd05af6c69b5, 0xa63f9a49c2c1b10f}, // 1e-6
	{0xd6bf94d5e57a42bc, 0x3d32907604691b4c}, // 1e-7
	{0xabcc77118461cefc, 0xfdc20d2b36ba7c3d}, // 1e-8
	{0x89705f4136b4a597, 0x31680a88f8953030}, // 1e-9
	{0xdbe6fecebdedd5be, 0xb573440e5a884d1b}, // 1e-10
	{0xafebff0bcb24aafe, 0xf78f69a51539d748}, // 1e-11
	{0x8cbccc096f5088cb, 0xf93f87b7442e45d3}, // 1e-12
	{0xe12e13424bb40e13, 0x2865a5f206b06fb9}, // 1e-13
	{0xb424dc35095cd80f, 0x538484c19ef38c94}, // 1e-14
	{0x901d7cf73ab0acd9, 0x0f9d37014bf60a10}, // 1e-15
	{0xe69594bec44de15b, 0x4c2ebe687989a9b3}, // 1e-16
	{0xb877aa3236a4b449, 0x09befeb9fad487c2}, // 1e-17
	{0x9392ee8e921d5d07, 0x3aff322e62439fcf}, // 1e-18
	{0xec1e4a7db69561a5, 0x2b31e9e3d06c32e5}, // 1e-19
	{0xbce5086492111aea, 0x88f4bb1ca6bcf584}, // 1e-20
	{0x971da05074da7bee, 0xd3f6fc16ebca5e03}, // 1e-21
	{0xf1c90080baf72cb1, 0x5324c68b12dd6338}, // 1e-22
}

// longDecimalToFloat returns mant / 10^frac correctly rounded, for a
// decimal whose digits read as an integer are mant, above 2^53 (so the
// exact division of the decoder's fast paths does not apply) and exactly
// held (at most 19 digits), frac of them after the point (0 to 22), as the
// 16-17 significant digits of a shortest-form float64 are. It runs the
// Eisel-Lemire algorithm as Go's strconv does (D. Lemire, "Number Parsing
// at a Gigabyte per Second", 2021; N. Tao's write-up,
// https://nigeltao.github.io/blog/2020/eisel-lemire.html), and answers
// ok=false for the rare halfway-ambiguous inputs: the caller then asks
// strconv.
func longDecimalToFloat(mant uint64, frac int, neg bool) (float64, bool) {
	// mant > 0, so the algorithm's zero case never comes.
	pow := &pow10Mant[frac]
	exp2 := 1 + (-frac*108853)>>15 // 1 + floor(-frac * log2(10))
	clz := bits.LeadingZeros64(mant)
	mant <<= uint(clz)
	retExp2 := uint64(exp2+63+1023) - uint64(clz)
	xHi, xLo := bits.Mul64(mant, pow[0])
	if xHi&0x1FF == 0x1FF && xLo+mant < mant {
		yHi, yLo := bits.Mul64(mant, pow[1])
		mergedHi, mergedLo := xHi, xLo+yHi
		if mergedLo < xLo {
			mergedHi++
		}
		if mergedHi&0x1FF == 0x1FF && mergedLo+1 == 0 && yLo+mant < mant {
			return 0, false
		}
		xHi, xLo = mergedHi, mergedLo
	}
	msb := xHi >> 63
	retMant := xHi >> (msb + 9)
	retExp2 -= 1 ^ msb
	if xLo == 0 && xHi&0x1FF == 0 && retMant&3 == 1 {
		return 0, false // halfway between two float64s: ambiguous here
	}
	retMant += retMant & 1
	retMant >>= 1
	if retMant>>53 > 0 {
		retMant >>= 1
		retExp2++
	}
	if retExp2-1 >= 0x7FF-1 {
		return 0, false // subnormal or infinite: not from these inputs
	}
	b := retExp2<<52 | retMant&(1<<52-1)
	if neg {
		b |= 1 << 63
	}
	return math.Float64frombits(b), true
}
