package cache

import (
	"fmt"
	"net/http"
	"testing"
)

// A flood of unique keys keeps the memory tier within its byte budget.
func TestMemoryStaysWithinBudget(t *testing.T) {
	const budget = 2 << 20
	c, err := New(Config{MaxBytes: budget, MaxObjectBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, 16<<10)
	for i := range 2000 { // 32 MiB offered to a 2 MiB tier
		c.mem.set(&Entry{Key: fmt.Sprintf("http://flood.example/%d", i), Status: 200, Header: http.Header{}, Body: body})
		if got := c.mem.bytes(); got > budget {
			t.Fatalf("after %d objects the memory tier holds %d bytes, over its %d budget", i+1, got, budget)
		}
	}
	if n := c.mem.objects(); n == 0 || n > budget/(16<<10) {
		t.Errorf("%d objects held", n)
	}
}
