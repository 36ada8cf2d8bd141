package purge_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/edged-proxy/edged/purge"
)

// Recent lists the last purges newest first, and forgets as the receipt
// ring does.
func TestRecent(t *testing.T) {
	p, _, _ := newTestPurger(t, purge.Config{Receipts: 3})
	if got := p.Recent(5); len(got) != 0 {
		t.Fatalf("no purges yet: %+v", got)
	}
	var ids []string
	for i := range 4 {
		w := post(t, p, allToken, fmt.Sprintf(`{"tags":["t%d"]}`, i))
		var res purge.Result
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{1, ids[3:]},
		{2, []string{ids[3], ids[2]}},
		{10, []string{ids[3], ids[2], ids[1]}}, // the ring keeps 3
	} {
		got := p.Recent(tc.n)
		var gotIDs []string
		for _, rc := range got {
			gotIDs = append(gotIDs, rc.ID)
		}
		if fmt.Sprint(gotIDs) != fmt.Sprint(tc.want) {
			t.Errorf("Recent(%d) = %v, want %v", tc.n, gotIDs, tc.want)
		}
	}
	if rc := p.Recent(1)[0]; rc.Selector.Tags[0] != "t3" || len(rc.Nodes) != 1 || rc.Nodes[0].AppliedAt.IsZero() {
		t.Errorf("newest receipt %+v", rc)
	}
}
