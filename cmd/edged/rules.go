package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/lb"
)

// ruleSpecs maps a site's configured rules to package rules' form, key for
// key (TestEveryRuleKeyReachesItsSpec holds the mapping complete).
func ruleSpecs(in []config.Rule) []rules.Spec {
	out := make([]rules.Spec, len(in))
	for i, r := range in {
		m, c, k := r.Match, r.Cache, r.Key
		out[i] = rules.Spec{
			Name: r.Name,
			Match: rules.Match{Hosts: m.Hosts, Paths: m.Paths, PathRegex: m.PathRegex, Methods: m.Methods,
				Query: m.Query, Headers: m.Headers, Cookies: m.Cookies, Clients: m.Clients, NotClients: m.NotClients,
				Scheme: m.Scheme},
			Cache: rules.Cache{Bypass: c.Bypass, NoCompress: c.NoCompress, Slice: c.Slice.Int64(), NoSlice: c.NoSlice, TTL: c.TTL.Std(), MinTTL: c.MinTTL.Std(), MaxTTL: c.MaxTTL.Std(),
				DefaultTTL: c.DefaultTTL.Std(), TTLByStatus: c.TTLByStatus,
				StaleWhileRevalidate: c.StaleWhileRevalidate.Std(), StaleIfError: c.StaleIfError.Std(),
				BrowserTTL: c.BrowserTTL.Std()},
			Key: rules.Key{Query: k.Query, QueryAllow: k.QueryAllow, QueryDeny: k.QueryDeny, Headers: k.Headers,
				Cookies: k.Cookies, Host: k.Host},
			RequestHeaders:  headerOps(r.RequestHeaders),
			ResponseHeaders: headerOps(r.ResponseHeaders),
			Redirect:        rules.Redirect{Status: r.Redirect.Status, Location: r.Redirect.Location},
			Respond:         rules.Respond{Status: r.Respond.Status, Body: r.Respond.Body, ContentType: r.Respond.ContentType},
			Origin:          r.Origin,
			RateLimit:       rateLimit(r.RateLimit),
		}
	}
	return out
}

// rateLimit is the rules form of a rate_limit (rate 0: none).
func rateLimit(l config.RateLimit) rules.RateLimit {
	return rules.RateLimit{Rate: l.Rate, Per: l.Per.Std(), Burst: l.Burst, MaxClients: l.MaxClients}
}

func headerOps(h config.RuleHeaders) rules.HeaderOps {
	return rules.HeaderOps{Set: h.Set, Add: h.Add, Remove: h.Remove}
}

// poolNames are the names a site's rules may route to: "default" (the
// site's origins) and its pools.
func poolNames(s config.Site) []string {
	names := []string{"default"}
	for _, p := range s.Pools {
		names = append(names, p.Name)
	}
	return names
}

// compileRules compiles a site's rules; a site without rules has none
// (nil), so its requests pay nothing for them.
func compileRules(s config.Site) (*rules.Set, error) {
	if len(s.Rules) == 0 {
		return nil, nil
	}
	return rules.Compile(ruleSpecs(s.Rules), rules.Options{Origins: poolNames(s)})
}

// ruleChecks compiles every site's rules as starting will, and reports
// each problem at its key (sites[i].rules[j]...), so that a bad regular
// expression or template is reported at its line, by -check-config too.
func ruleChecks(cfg *config.Config) []*config.Error {
	var errs []*config.Error
	for i, s := range cfg.Sites {
		_, err := compileRules(s)
		if err == nil {
			continue
		}
		prefix := "sites[" + strconv.Itoa(i) + "].rules"
		var joined interface{ Unwrap() []error }
		list := []error{err}
		if errors.As(err, &joined) {
			list = joined.Unwrap()
		}
		for _, e := range list {
			if re, ok := errors.AsType[*rules.Error](e); ok {
				errs = append(errs, &config.Error{Path: prefix + re.Path, Msg: re.Msg})
			} else {
				errs = append(errs, &config.Error{Path: prefix, Msg: e.Error()})
			}
		}
	}
	return errs
}

// rulePools builds a site's further origin pools (sites[].pools), each
// from the site's configuration with its own origins and upstream keys,
// its metrics labelled pool="SITE/POOL". They are appended to all.
func rulePools(s config.Site, all []*lb.Pool, lbm *lb.Metrics, logger *slog.Logger, prev map[string]*lb.Pool) (map[string]edge.Pool, []*lb.Pool, error) {
	if len(s.Pools) == 0 {
		return nil, all, nil
	}
	out := make(map[string]edge.Pool, len(s.Pools))
	for _, p := range s.Pools {
		ps := s
		ps.Name, ps.Origins, ps.Upstream = s.Name+"/"+p.Name, p.Origins, p.Upstream
		pc := poolConfig(ps, lbm, logger)
		pc.Previous = prev[ps.Name] // a reload keeps unchanged shards' connections
		pool, err := lb.NewPool(pc)
		if err != nil {
			return nil, all, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		all = append(all, pool)
		out[p.Name] = edge.Pool{Origin: pool, OriginHost: p.OriginHost}
	}
	return out, all, nil
}
