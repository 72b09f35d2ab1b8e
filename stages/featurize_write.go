package stages

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// aggWrite is one batch's deferred write of entity aggregates; done is set
// once Redis acknowledged it (from the deferred work's goroutine).
type aggWrite struct {
	keys []string
	// packed holds `"<n>","<mean>","<last>",` per key: the elements of a
	// JSON array of strings, the floats as go-redis writes them (strconv
	// 'f', -1, which writes no character JSON would escape).
	packed []byte
	// ends[k] is the end of key k's elements in packed.
	ends []int
	// refresh holds, in increasing order, the indices in keys of those
	// whose TTL the write sets (see writeAggregates).
	refresh []int
	ttl     time.Duration
	done    atomic.Bool
	// array and args are flush's scratch: a script call's JSON array, and
	// its arguments.
	array []byte
	args  []any
}

// add appends key k's aggregates to the write.
func (w *aggWrite) add(k string, v *entityAgg, refresh bool) {
	if refresh {
		w.refresh = append(w.refresh, len(w.keys))
	}
	w.keys = append(w.keys, k)
	w.packed = append(w.packed, '"')
	w.packed = appendCount(w.packed, v.n)
	w.packed = append(w.packed, `","`...)
	w.packed = strconv.AppendFloat(w.packed, v.mean, 'f', -1, 64)
	w.packed = append(w.packed, `","`...)
	w.packed = appendSeconds(w.packed, v.last)
	w.packed = append(w.packed, `",`...)
	w.ends = append(w.ends, len(w.packed))
}

// reset empties the write for reuse. Only a write that is done (its
// flush returned) or was never handed to anyone may be reset.
func (w *aggWrite) reset() {
	clear(w.keys) // hold no key strings
	w.keys, w.packed, w.ends, w.refresh = w.keys[:0], w.packed[:0], w.ends[:0], w.refresh[:0]
	w.done.Store(false)
}

// flush sends the write: one script call per scriptChunkRows entities
// (one round trip for a batch of up to 512 entities). It writes absolute
// values, so running it again (a retry) is harmless.
func (w *aggWrite) flush(ctx context.Context, rdb redis.UniversalClient, call *scriptCall) error {
	ttl := w.ttl.Milliseconds()
	refresh := w.refresh
	for lo := 0; lo < len(w.keys); lo += scriptChunkRows {
		hi := min(lo+scriptChunkRows, len(w.keys))
		start := 0
		if lo > 0 {
			start = w.ends[lo-1]
		}
		elems := w.packed[start : w.ends[hi-1]-1] // less the last comma
		w.array = append(append(append(w.array[:0], '['), elems...), ']')
		args := append(w.args[:0], ttl, w.array)
		for len(refresh) > 0 && refresh[0] < hi {
			args = append(args, refresh[0]-lo+1)
			refresh = refresh[1:]
		}
		n, err := call.run(ctx, rdb, w.keys[lo:hi], args...).Int()
		clear(args)
		w.args = args[:0]
		if err != nil {
			return fmt.Errorf("featurize: write entity aggregates: %w", err)
		}
		if n != hi-lo {
			return fmt.Errorf("featurize: redis wrote %d entities of %d", n, hi-lo)
		}
	}
	w.done.Store(true)
	return nil
}

// writeAggregates writes a batch's entity aggregates in one call: for
// each key, HSET key n <n> mean <mean> last <last>; then PEXPIRE key
// <ttl> for the keys whose TTL needs a refresh. KEYS: the entities' keys.
// ARGV: the TTL in ms; a JSON array of strings, each key's n, mean and
// last in turn; then the (1-based) indices in KEYS of the keys to
// PEXPIRE. The hash holds the same strings as one HSET per entity from
// go-redis did, and as the script runs whole, each key ends with the same
// fields and TTL as when its PEXPIRE followed its HSET. It returns how
// many keys it wrote. One script instead of one or two commands per
// entity saves most of the client's work per entity (on Redis Cluster the
// keys must then share a slot: give key_prefix a {hash tag}, as for
// dedupe). The values come in one cjson.decode, a library call per
// script call, rather than a pattern match per entity (string.gmatch):
// on miniredis (gopher-lua) the match cost about as much as the HSET, and
// on redis-server the script takes a quarter less time
// (BenchmarkFeaturizeEntities' srv-ns/event).
var writeAggregates = redis.NewScript(`
local v = cjson.decode(ARGV[2])
local n = #KEYS
for i = 1, n do
  local j = 3 * i - 2
  redis.call('HSET', KEYS[i], 'n', v[j], 'mean', v[j + 1], 'last', v[j + 2])
end
for j = 3, #ARGV do
  redis.call('PEXPIRE', KEYS[tonumber(ARGV[j])], ARGV[1])
end
return n
`)

// appendCount appends x as strconv.AppendFloat(dst, x, 'f', -1, 64) does.
// An entity's count is a whole number: below 1e15, where a float64's
// spacing is under 1, the shortest decimal that reads back as x is x's
// integer digits, which AppendInt writes without the shortest-digits
// search.
func appendCount(dst []byte, x float64) []byte {
	if x >= 0 && x < 1e15 && x == math.Trunc(x) && !math.Signbit(x) {
		return strconv.AppendInt(dst, int64(x), 10)
	}
	return strconv.AppendFloat(dst, x, 'f', -1, 64)
}

// appendSeconds appends x as strconv.AppendFloat(dst, x, 'f', -1, 64)
// does. An entity's last event time is unix microseconds over 1e6 (see
// addEntityAggregates): when x is exactly float64(m)/1e6 for a whole m and
// 1 <= x < 2^32, the float64 spacing near x (at most 2^-21) is under a
// microsecond, so no other decimal of at most 6 fraction digits reads
// back as x, and the shortest one that does is m/1e6 itself: its integer
// part, then its fraction without trailing zeros. Any other x takes
// strconv's shortest-digits search.
func appendSeconds(dst []byte, x float64) []byte {
	if x >= 1 && x < 1<<32 {
		m := int64(math.Round(x * 1e6))
		if float64(m)/1e6 == x {
			dst = strconv.AppendInt(dst, m/1e6, 10)
			frac := m % 1e6
			if frac == 0 {
				return dst
			}
			var digits [7]byte
			digits[0] = '.'
			for k := 6; k >= 1; k-- {
				digits[k] = byte('0' + frac%10)
				frac /= 10
			}
			n := 7
			for digits[n-1] == '0' {
				n--
			}
			return append(dst, digits[:n]...)
		}
	}
	return strconv.AppendFloat(dst, x, 'f', -1, 64)
}
