package rfc

import (
	"math"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestPolicyTargeted checks how a targeted field (RFC 9213) governs a
// response: parsed as an SF Dictionary (§2.1), members used only with
// their expected types, the first valid field of the target list winning
// over Cache-Control and Expires (§2.2).
func TestPolicyTargeted(t *testing.T) {
	fresh := func(d time.Duration) Decision { return Decision{Storable: true, Lifetime: d} }
	heur := Decision{Storable: true, Heuristic: true} // no Last-Modified: lifetime 0
	no := func(reason string) Decision { return Decision{Reason: reason} }
	tests := []struct {
		name   string
		policy Policy
		resp   []string
		want   Decision
	}{
		{name: "max-age replaces Cache-Control", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, want: fresh(time.Minute)},
		{name: "Expires is ignored", resp: []string{"Expires", polDate(polT0.Add(time.Hour)), "CDN-Cache-Control", "must-revalidate"}, want: Decision{Storable: true, Heuristic: true, MustRevalidate: true}},
		{name: "s-maxage implies proxy-revalidate", resp: []string{"CDN-Cache-Control", "s-maxage=60"}, want: Decision{Storable: true, Lifetime: time.Minute, MustRevalidate: true}},
		{name: "stale windows", resp: []string{"CDN-Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=60"}, want: Decision{Storable: true, Lifetime: time.Second, StaleWhileRevalidate: 30 * time.Second, StaleIfError: time.Minute}},
		{name: "no-store", resp: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"}, want: no("no-store")},
		{name: "private", resp: []string{"CDN-Cache-Control", "private, max-age=60"}, want: no("private")},
		{name: "qualified private as a String", resp: []string{"CDN-Cache-Control", `private="set-cookie", max-age=60`}, want: no("private")},
		{name: "qualified private as an Inner List", resp: []string{"CDN-Cache-Control", `private=("set-cookie" x-user), max-age=60`}, want: no("private")},
		{name: "qualified no-cache as a Token", resp: []string{"CDN-Cache-Control", "no-cache=x-user, max-age=60"}, want: Decision{Storable: true, Lifetime: time.Minute, NoCache: true}},
		{name: "public", resp: []string{"CDN-Cache-Control", "public"}, policy: Policy{}, want: heur},
		{name: "must-understand lifts no-store", resp: []string{"CDN-Cache-Control", "must-understand, no-store, max-age=60"}, want: fresh(time.Minute)},
		{name: "huge max-age clamped to 2^31-1", resp: []string{"CDN-Cache-Control", "max-age=999999999999999"}, want: fresh(time.Duration(math.MaxInt32) * time.Second)},
		{name: "repeated key: the last value", resp: []string{"CDN-Cache-Control", "max-age=600, max-age=60"}, want: fresh(time.Minute)},
		{name: "parameters ignored", resp: []string{"CDN-Cache-Control", "max-age=60;a=1;b"}, want: fresh(time.Minute)},

		// Members of the wrong type are not used (§2.1).
		{name: "max-age String not used", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", `max-age="10000"`}, want: heur},
		{name: "max-age Decimal not used", resp: []string{"CDN-Cache-Control", "max-age=60.0"}, want: heur},
		{name: "max-age Boolean not used", resp: []string{"CDN-Cache-Control", "max-age"}, want: heur},
		{name: "negative max-age not used", resp: []string{"CDN-Cache-Control", "max-age=-5"}, want: heur},
		{name: "no-store=?0 not used", resp: []string{"CDN-Cache-Control", "no-store=?0, max-age=60"}, want: fresh(time.Minute)},
		{name: "no-store=1 not used", resp: []string{"CDN-Cache-Control", "no-store=1, max-age=60"}, want: fresh(time.Minute)},
		{name: "private=?0 not used", resp: []string{"CDN-Cache-Control", "private=?0, max-age=60"}, want: fresh(time.Minute)},
		{name: "private=5 not used", resp: []string{"CDN-Cache-Control", "private=5, max-age=60"}, want: fresh(time.Minute)},
		{name: "unknown directives only: the field still governs", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "none"}, want: heur},

		// A field that fails to parse, or is empty, is ignored (§2.1).
		{name: "trailing &&&& fails the field", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age=60, &&&&"}, want: fresh(10 * time.Minute)},
		{name: "upper-case key fails the field", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "Max-Age=60"}, want: no("no-store")},
		{name: "Cache-Control syntax fails the field", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age = 60"}, want: fresh(10 * time.Minute)},
		{name: "empty field ignored", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", ""}, want: fresh(10 * time.Minute)},
		{name: "a broken first field gives way to the next", resp: []string{"CDN-Cache-Control", "max-age=60 &&&&", "Surrogate-Control", "max-age=30"}, want: fresh(30 * time.Second)},
		{name: "Expires applies when the targeted field is ignored", resp: []string{"Expires", polDate(polT0.Add(time.Hour)), "CDN-Cache-Control", "&&&&"}, want: fresh(time.Hour)},

		// The target list (§2.2): edged's own fields, then the class's.
		{name: "CDN-Cache-Control before Surrogate-Control", resp: []string{"Surrogate-Control", "max-age=600", "CDN-Cache-Control", "max-age=60"}, want: fresh(time.Minute)},
		{name: "Edged-Cache-Control before CDN-Cache-Control", resp: []string{"CDN-Cache-Control", "max-age=600", "Edged-Cache-Control", "max-age=60"}, want: fresh(time.Minute)},
		{name: "a broken own field gives way to CDN-Cache-Control", resp: []string{"CDN-Cache-Control", "max-age=600", "Edged-Cache-Control", "max-age=60,"}, want: fresh(10 * time.Minute)},
		{name: "configured own field before configured class field", policy: Policy{OwnTargetedHeaders: []string{"Acme-Cache-Control"}, TargetedHeaders: []string{"Edged-Cache-Control"}}, resp: []string{"Edged-Cache-Control", "max-age=600", "Acme-Cache-Control", "max-age=60"}, want: fresh(time.Minute)},
		{name: "no own field: Edged-Cache-Control is nothing", policy: Policy{OwnTargetedHeaders: []string{}}, resp: []string{"Cache-Control", "max-age=600", "Edged-Cache-Control", "max-age=60"}, want: fresh(10 * time.Minute)},
		{name: "configured list", policy: Policy{TargetedHeaders: []string{"Edged-Cache-Control"}}, resp: []string{"CDN-Cache-Control", "max-age=600", "Edged-Cache-Control", "max-age=60"}, want: fresh(time.Minute)},
		{name: "field not on the list is ignored", policy: Policy{TargetedHeaders: []string{"Edged-Cache-Control"}}, resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=600"}, want: no("no-store")},
		{name: "empty list obeys none", policy: Policy{TargetedHeaders: []string{}}, resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=600"}, want: no("no-store")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rh := polHeader(tt.resp...)
			rh.Set("Date", polDate(polT0))
			req := &http.Request{Method: http.MethodGet, Header: http.Header{}}
			got := tt.policy.evaluate(req, &http.Response{StatusCode: http.StatusOK, Header: rh}, polNow)
			if tt.want.Storable && tt.want.StaleIfError == 0 {
				tt.want.StaleIfError = DefaultStaleIfError // every storable response gets the default window
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("evaluate = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyTargetList(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		own, all []string
	}{
		{"defaults", Policy{}, []string{"Edged-Cache-Control"}, []string{"Edged-Cache-Control", "Cdn-Cache-Control", "Surrogate-Control"}},
		{"own only", Policy{OwnTargetedHeaders: []string{"A"}, TargetedHeaders: []string{}}, []string{"A"}, []string{"A"}},
		{"class only", Policy{OwnTargetedHeaders: []string{}, TargetedHeaders: []string{"B"}}, []string{}, []string{"B"}},
		{"none", Policy{OwnTargetedHeaders: []string{}, TargetedHeaders: []string{}}, []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.OwnTargeted(); !slices.Equal(got, tt.own) {
				t.Errorf("OwnTargeted = %q, want %q", got, tt.own)
			}
			all := tt.policy.TargetList()
			if !slices.Equal(all, tt.all) {
				t.Errorf("TargetList = %q, want %q", all, tt.all)
			}
			for i := range all {
				all[i] = "changed" // the caller's: must not alter the policy or the defaults
			}
			if again := tt.policy.TargetList(); !slices.Equal(again, tt.all) {
				t.Errorf("TargetList after changing the last one = %q, want %q", again, tt.all)
			}
		})
	}
}
