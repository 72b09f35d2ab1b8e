package stages

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestPow10MantMatchesBigRat recomputes longDecimalToFloat's table: 10^-e
// scaled by a power of two into [2^127, 2^128), truncated.
func TestPow10MantMatchesBigRat(t *testing.T) {
	lim := new(big.Int).Lsh(big.NewInt(1), 128)
	for e := range pow10Mant {
		den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil)
		num := big.NewInt(1)
		for new(big.Int).Quo(num, den).Cmp(lim) < 0 {
			num.Lsh(num, 1)
		}
		q := new(big.Int).Quo(num, den) // in [2^128, 2^129): one shift too far
		q.Rsh(q, 1)
		lo := new(big.Int).And(q, new(big.Int).SetUint64(math.MaxUint64))
		hi := new(big.Int).Rsh(q, 64)
		if hi.Uint64() != pow10Mant[e][0] || lo.Uint64() != pow10Mant[e][1] {
			t.Fatalf("1e-%d: table {%#x, %#x}, want {%#x, %#x}", e, pow10Mant[e][0], pow10Mant[e][1], hi.Uint64(), lo.Uint64())
		}
	}
}

// TestLongDecimalToFloat checks longDecimalToFloat against
// strconv bit for bit on the decimals it is for: 16 to 19 significant
// digits, the point anywhere, and the shortest forms of random float64s.
func TestLongDecimalToFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	var took, declined int
	check := func(s string) {
		t.Helper()
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		got, bad := parseFloat([]byte(s))
		if bad || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: parseFloat %v (%x, bad %v), strconv %v (%x)", s, got, math.Float64bits(got), bad, want, math.Float64bits(want))
		}
		p := scanner{data: []byte(s)}
		if v, ok := p.readPlainNumber(); ok {
			took++
			if p.pos != len(s) || math.Float64bits(v) != math.Float64bits(want) {
				t.Fatalf("%s: readPlainNumber %v up to byte %d, strconv %v", s, v, p.pos, want)
			}
		} else {
			declined++
		}
	}
	for range 1_000_000 {
		var s string
		if rng.IntN(2) == 0 {
			f := rng.Float64() * math.Pow(10, float64(rng.IntN(8)-3))
			s = strconv.FormatFloat(f, 'f', -1, 64)
		} else {
			n := 16 + rng.IntN(4)
			b := make([]byte, n)
			b[0] = byte('1' + rng.IntN(9))
			for i := 1; i < n; i++ {
				b[i] = byte('0' + rng.IntN(10))
			}
			at := 1 + rng.IntN(n-1)
			s = string(b[:at]) + "." + string(b[at:])
		}
		if rng.IntN(2) == 0 {
			s = "-" + s
		}
		check(s)
	}
	// Halfway cases: 2^53+1 and its neighbours written out exactly.
	for _, s := range []string{"9007199254740993", "9007199254740993.0", "9007199254740995", "18014398509481985", "1.8014398509481985", "9223372036854775807", "9999999999999999999"} {
		check(s)
	}
	if took < 900_000 {
		t.Fatalf("readPlainNumber took %d of %d long decimals, declined %d: the fast path is not taken", took, took+declined, declined)
	}
}
