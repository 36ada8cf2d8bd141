package lb

import (
	"context"

	"github.com/edged-proxy/edged/internal/route"
)

// Route carries request-scoped routing data between a caller and
// Pool.RoundTrip: the caller sets Key, RoundTrip sets Shard and Attempts
// before it returns. It is an alias of the internal type that the edge
// package (which may not import lb) also uses.
//
// The caller owns the Route: it must not read or write it while RoundTrip
// is running, and must not share one Route between concurrent requests.
// An empty Key means the Pool derives one from the request:
// req.URL.Scheme + "://" + req.Host + req.URL.RequestURI(), with
// req.URL.Host standing in for an empty req.Host.
type Route = route.Route

// WithRoute returns a copy of ctx carrying r.
func WithRoute(ctx context.Context, r *Route) context.Context { return route.With(ctx, r) }

// RouteFrom returns the Route attached to ctx by WithRoute, or nil.
func RouteFrom(ctx context.Context) *Route { return route.From(ctx) }
