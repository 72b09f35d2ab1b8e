package pipeline

import (
	"math/bits"
	"sync"
)

// DefaultBufferPoolBytes is RunnerConfig.BufferPoolBytes' default: about
// 40 batches of 1,024 typical events, and what a few batches of 10,000
// need.
const DefaultBufferPoolBytes = 16 << 20

// Buffers of fewer bytes than 1<<minPoolClass are not pooled (the collector
// handles small ones cheaply); above 1<<maxPoolClass neither.
const (
	minPoolClass = 3
	maxPoolClass = 30
)

// BufferPool lends byte buffers for one partition loop's per-batch data
// (Arrow column buffers, the outputs' bytes) and takes them back once the
// batch that used them is done with them, so that a steady stream of
// batches allocates, and makes the collector clear and trace, nothing per
// batch for them. Buffers are kept by power-of-two size class, at most
// the pool's byte bound in all; a buffer given back beyond it is left to
// the collector.
//
// It is a memory.Allocator: an Arrow buffer made with
// memory.NewBufferWithAllocator(buf, pool) comes back to the pool when its
// last reference is released, which is how a batch's Record gives its
// columns back (see Batch.Pool for who holds a Record how long).
//
// A BufferPool is safe for concurrent use: buffers come back from the
// goroutines that acknowledge batches or release records.
type BufferPool struct {
	mu       sync.Mutex
	free     [maxPoolClass + 1][][]byte
	bytes    int // capacity of the buffers held
	maxBytes int
	reused   int64
}

// NewBufferPool returns a pool that keeps at most maxBytes of buffers.
func NewBufferPool(maxBytes int) *BufferPool {
	return &BufferPool{maxBytes: maxBytes}
}

// Get returns a buffer of length n whose contents are undefined (what the
// previous user wrote); its capacity may be larger. A nil pool returns a
// fresh, zeroed buffer.
func (p *BufferPool) Get(n int) []byte {
	if p == nil || n < 1<<minPoolClass || n > 1<<maxPoolClass {
		return make([]byte, n)
	}
	c := bits.Len(uint(n - 1)) // the smallest class whose buffers all hold n
	p.mu.Lock()
	if k := len(p.free[c]); k > 0 {
		buf := p.free[c][k-1]
		p.free[c][k-1] = nil
		p.free[c] = p.free[c][:k-1]
		p.bytes -= cap(buf)
		p.reused++
		p.mu.Unlock()
		return buf[:n]
	}
	p.mu.Unlock()
	return make([]byte, n, 1<<c)
}

// Put gives buf back for a later Get. The caller must not use buf, or any
// slice of its memory, afterwards. A nil pool drops it.
func (p *BufferPool) Put(buf []byte) {
	n := cap(buf)
	if p == nil || n < 1<<minPoolClass {
		return
	}
	c := bits.Len(uint(n)) - 1 // the largest class whose size n holds
	if c > maxPoolClass {
		return
	}
	p.mu.Lock()
	if p.bytes+n <= p.maxBytes {
		p.free[c] = append(p.free[c], buf[:0])
		p.bytes += n
	}
	p.mu.Unlock()
}

// Reused is how many Gets were answered with a buffer given back.
func (p *BufferPool) Reused() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reused
}

// Allocate implements memory.Allocator: a zeroed buffer of size bytes.
func (p *BufferPool) Allocate(size int) []byte {
	buf := p.Get(size)
	clear(buf)
	return buf
}

// Reallocate implements memory.Allocator: b's bytes in a buffer of size
// bytes, the rest zeroed; b is given back.
func (p *BufferPool) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	buf := p.Get(size)
	clear(buf[copy(buf, b):])
	p.Put(b)
	return buf
}

// Free implements memory.Allocator: Put.
func (p *BufferPool) Free(b []byte) { p.Put(b) }
