package cache

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
)

// memoryTier is the in-process tier: ristretto with cost = bytes and TinyLFU
// admission. It holds whole entries up to maxObject bytes.
type memoryTier struct {
	// closeMu keeps writes from racing Close: fills detached from their
	// clients may still be storing when the cache is closed.
	closeMu   sync.RWMutex
	closed    bool
	c         *ristretto.Cache[string, *Entry]
	maxObject int64
	// keyLocks order a set against a setIfAbsent of the same key, so a
	// warm-start copy never lands over an entry a fill stored meanwhile.
	keyLocks  [64]sync.Mutex
	evictions atomic.Uint64
	rejects   atomic.Uint64
}

func newMemoryTier(maxBytes, maxObject int64) (*memoryTier, error) {
	m := &memoryTier{maxObject: maxObject}
	// Ristretto wants ~10 counters per expected item; assume a 4 KiB mean.
	counters := max(maxBytes/4096*10, 10_000)
	c, err := ristretto.NewCache(&ristretto.Config[string, *Entry]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: false,
		OnEvict:            func(*ristretto.Item[*Entry]) { m.evictions.Add(1) },
		OnReject:           func(*ristretto.Item[*Entry]) { m.rejects.Add(1) },
	})
	if err != nil {
		return nil, fmt.Errorf("cache: memory tier: %w", err)
	}
	m.c = c
	return m, nil
}

func (m *memoryTier) get(key string) (*Entry, bool) { return m.c.Get(key) }

// set offers e to the tier and waits until the admission decision is applied,
// so that the next lookup sees it. It returns false if e is too large.
func (m *memoryTier) set(e *Entry) bool { return m.put(e, false) }

// setIfAbsent is set unless the tier holds an entry under e's key.
func (m *memoryTier) setIfAbsent(e *Entry) bool { return m.put(e, true) }

// put is set, or setIfAbsent when ifAbsent is set, under e's key lock.
func (m *memoryTier) put(e *Entry, ifAbsent bool) bool {
	if e.size() > m.maxObject {
		return false
	}
	cost := e.cost()
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return false
	}
	mu := m.keyLock(e.Key)
	mu.Lock()
	defer mu.Unlock()
	if ifAbsent {
		if _, ok := m.c.Get(e.Key); ok {
			return false
		}
	}
	m.c.Set(e.Key, e, cost)
	m.c.Wait()
	return true
}

func (m *memoryTier) keyLock(key string) *sync.Mutex {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &m.keyLocks[h%uint32(len(m.keyLocks))]
}

func (m *memoryTier) del(key string) {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if !m.closed {
		m.c.Del(key)
	}
}

func (m *memoryTier) bytes() int64 { return m.c.MaxCost() - m.c.RemainingCost() }

func (m *memoryTier) objects() int {
	n := 0
	m.c.IterValues(func(*Entry) bool { n++; return false })
	return n
}

func (m *memoryTier) close() {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if !m.closed {
		m.closed = true
		m.c.Close()
	}
}
