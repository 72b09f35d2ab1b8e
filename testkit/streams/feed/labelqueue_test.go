package feed

import (
	"container/heap"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// boxedQueue is the container/heap version labelQueue replaced: the
// reference for its order.
type boxedQueue []pendingLabel

func (q boxedQueue) Len() int           { return len(q) }
func (q boxedQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q boxedQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *boxedQueue) Push(x any)        { *q = append(*q, x.(pendingLabel)) }
func (q *boxedQueue) Pop() any {
	l := (*q)[len(*q)-1]
	*q = (*q)[:len(*q)-1]
	return l
}

func TestLabelQueuePopsInDueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now()
	var q labelQueue
	var ref boxedQueue
	popped := 0
	for i := range 20_000 {
		// Few distinct due times, so that ties are common: the order among
		// equal due times must be container/heap's too.
		l := pendingLabel{due: base.Add(time.Duration(rng.IntN(500)) * time.Millisecond), key: []byte(strconv.Itoa(i))}
		q.push(l)
		heap.Push(&ref, l)
		for rng.IntN(3) == 0 && q.Len() > 0 {
			got, want := q.pop(), heap.Pop(&ref).(pendingLabel)
			popped++
			if string(got.key) != string(want.key) || !got.due.Equal(want.due) {
				t.Fatalf("pop %d: got label %s due %v, container/heap gives %s due %v", popped, got.key, got.due, want.key, want.due)
			}
		}
	}
	last := time.Time{}
	for q.Len() > 0 {
		got, want := q.pop(), heap.Pop(&ref).(pendingLabel)
		popped++
		if string(got.key) != string(want.key) {
			t.Fatalf("pop %d: got label %s, container/heap gives %s", popped, got.key, want.key)
		}
		if got.due.Before(last) {
			t.Fatalf("pop %d: due %v before the previous %v", popped, got.due, last)
		}
		last = got.due
	}
	if ref.Len() != 0 || q.written != int64(popped) || popped != 20_000 {
		t.Fatalf("popped %d, written %d, reference left %d; want 20000, 20000, 0", popped, q.written, ref.Len())
	}
}

// BenchmarkLabelQueue pushes and pops labels as the demo's producer does:
// about 10,000 pending, each due within a second.
func BenchmarkLabelQueue(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now()
	var q labelQueue
	key, value := []byte("e-1-1"), []byte(`{"event_id":"e-1-1","label":1}`)
	for range 10_000 {
		q.push(pendingLabel{due: base.Add(time.Duration(rng.IntN(1e9))), key: key, value: value})
	}
	b.ReportAllocs()
	for b.Loop() {
		l := q.pop()
		l.due = l.due.Add(time.Duration(rng.IntN(1e9)))
		q.push(l)
	}
}
