package pipeline_test

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/driftline/driftline/pipeline"
)

func sameMemory(a, b []byte) bool { return unsafe.SliceData(a) == unsafe.SliceData(b) }

func TestBufferPoolReusesBySizeClass(t *testing.T) {
	p := pipeline.NewBufferPool(1 << 20)
	a := p.Get(1000)
	if len(a) != 1000 || cap(a) < 1000 {
		t.Fatalf("Get(1000): len %d cap %d", len(a), cap(a))
	}
	p.Put(a)
	if b := p.Get(1024); !sameMemory(a, b) || len(b) != 1024 {
		t.Fatalf("Get(1024) after a 1,024-cap buffer came back: fresh memory (len %d)", len(b))
	} else {
		p.Put(b)
	}
	if c := p.Get(1025); sameMemory(a, c) {
		t.Fatal("Get(1025) returned a buffer of 1,024 bytes")
	}
	if d := p.Get(513); !sameMemory(a, d) {
		t.Fatal("Get(513) did not reuse the 1,024-byte buffer")
	}
	if got := p.Reused(); got != 2 {
		t.Fatalf("Reused() = %d, want 2", got)
	}
}

func TestBufferPoolBound(t *testing.T) {
	p := pipeline.NewBufferPool(1500)
	a, b := p.Get(1024), p.Get(1024)
	p.Put(a)
	p.Put(b) // over the bound: left to the collector
	if x := p.Get(1024); !sameMemory(x, a) {
		t.Fatal("the buffer within the bound was not kept")
	}
	if y := p.Get(1024); sameMemory(y, b) {
		t.Fatal("a buffer beyond the pool's byte bound was kept")
	}
	small := p.Get(5)
	p.Put(small)
	if z := p.Get(5); sameMemory(z, small) {
		t.Fatal("a buffer under the smallest class was pooled")
	}
}

func TestNilBufferPoolAllocatesFresh(t *testing.T) {
	var p *pipeline.BufferPool
	a := p.Get(4096)
	for _, c := range a {
		if c != 0 {
			t.Fatal("a nil pool's buffer is not zeroed")
		}
	}
	p.Put(a) // dropped
	if b := p.Get(4096); sameMemory(a, b) {
		t.Fatal("a nil pool reused a buffer")
	}
}

// The pool as Arrow's allocator: Allocate zeroes what it lends, Reallocate
// keeps the bytes, and a buffer's last Release gives its memory back.
func TestBufferPoolAsArrowAllocator(t *testing.T) {
	p := pipeline.NewBufferPool(1 << 20)
	dirty := p.Get(256)
	for i := range dirty {
		dirty[i] = 0xff
	}
	p.Put(dirty)
	z := p.Allocate(200)
	if !sameMemory(z, dirty) {
		t.Fatal("Allocate did not reuse the pooled buffer")
	}
	for i, c := range z {
		if c != 0 {
			t.Fatalf("Allocate: byte %d is %#x, want 0", i, c)
		}
	}
	copy(z, "keep")
	r := p.Reallocate(5000, z)
	if string(r[:4]) != "keep" || len(r) != 5000 || r[4] != 0 || r[4999] != 0 {
		t.Fatalf("Reallocate: %q…, len %d", r[:5], len(r))
	}
	buf := memory.NewBufferWithAllocator(r, p)
	buf.Retain()
	buf.Release()
	if again := p.Get(5000); sameMemory(again, r) {
		t.Fatal("a buffer still referenced came back to the pool")
	} else {
		p.Put(again)
	}
	buf.Release()
	if again := p.Get(8192); !sameMemory(again, r) {
		t.Fatal("the buffer's last Release did not give its memory back")
	}
}

// Buffers come back from other goroutines (acks, the lake's writer):
// run with -race.
func TestBufferPoolConcurrent(t *testing.T) {
	p := pipeline.NewBufferPool(1 << 20)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				buf := p.Get(64 << (i % 6))
				buf[0] = byte(g)
				p.Put(buf)
			}
		}()
	}
	wg.Wait()
}
