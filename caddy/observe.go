package caddy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// EnsureRoutes is Ensure followed by Routes from one read of Caddy's
// config: it reads the http app once, and when jailkeeper's server is in
// place (what Ensure would find: nothing to write, the case of every pass
// but the one after Caddy lost or changed its config) it returns the
// server's routes from that read. Otherwise it runs Ensure and then Routes.
// An agent pass that starts with it reads Caddy's config once (issue 11).
// Safe for concurrent use.
func (c *Client) EnsureRoutes(ctx context.Context) (map[string]Route, error) {
	if routes, ok := c.ensuredRoutes(ctx); ok {
		return routes, nil
	}
	if err := c.Ensure(ctx); err != nil {
		return nil, err
	}
	return c.Routes(ctx)
}

// ensuredRoutes reads the http app and returns jailkeeper's routes when
// Ensure has nothing to do; ok is false when it has, or the read failed
// (Ensure and Routes then say why). An app as the last one that Ensure
// had nothing to do for is not decoded again (ensuredMemo). Otherwise the
// routes are decoded once, by the memo; what Ensure checks is decoded
// without them, with each route standing in as its @id (all
// nextEnsureStep looks at, except for legacy routes, which make ok
// false). Upstream files are stat'ed in turn (UpstreamRounds).
func (c *Client) ensuredRoutes(ctx context.Context) (map[string]Route, bool) {
	resp, err := c.do(ctx, http.MethodGet, "/config/apps/http", nil, "")
	if err != nil {
		return nil, false
	}
	infos, ok := c.ensured.get(resp.body)
	if !ok {
		if infos, ok = c.ensuredInfos(resp.body); !ok {
			return nil, false
		}
		c.ensured.put(resp.body, infos)
	}
	if c.fillUpstreams(infos, false) != nil || c.fillCanaries(infos, nil) != nil {
		return nil, false
	}
	out := make(map[string]Route, len(infos))
	for _, ri := range infos {
		if ri.service != "" {
			r := ri.route
			r.Hostnames = slices.Clone(r.Hostnames) // the caller's own
			out[ri.service] = r
		}
	}
	return out, true
}

// ensuredInfos decodes the http app body and returns its routes when
// Ensure has nothing to do; ok is false when it has.
func (c *Client) ensuredInfos(body []byte) ([]routeInfo, bool) {
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return nil, false
	}
	var app, servers, srv map[string]json.RawMessage
	if json.Unmarshal(body, &app) != nil || json.Unmarshal(app["servers"], &servers) != nil ||
		json.Unmarshal(servers[c.cfg.Server], &srv) != nil || srv == nil || srv["routes"] == nil {
		return nil, false
	}
	infos, err := c.memo.parseRoutes(srv["routes"], c.cfg.UpstreamDir)
	if err != nil {
		return nil, false
	}
	server := map[string]any{}
	for k, raw := range srv {
		if k == "routes" {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil, false
		}
		server[k] = v
	}
	stubs := make([]any, 0, len(infos))
	for _, ri := range infos {
		if ri.legacy {
			return nil, false // Ensure rewrites it
		}
		id := RouteID(ri.service)
		if ri.service == "" {
			var head struct {
				ID string `json:"@id"`
			}
			_ = json.Unmarshal(ri.raw, &head)
			id = head.ID
		}
		stubs = append(stubs, map[string]any{"@id": id})
	}
	server["routes"] = stubs
	httpApp := map[string]any{"servers": map[string]any{c.cfg.Server: server}}
	if raw, ok := app["grace_period"]; ok {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil, false
		}
		httpApp["grace_period"] = v
	}
	root := map[string]any{"apps": map[string]any{"http": httpApp}}
	if _, path, _, err := c.nextEnsureStep(root); err != nil || path != "" {
		return nil, false
	}
	return infos, true
}

// routeMemo remembers what parseRoutes made of each route of the last
// read, by the route's JSON. An idle pass reads the same routes every
// time, and checking each for drift (rendering it again and comparing
// canonical JSON) was most of the cost of a read of 1,000 routes (issue
// 11). Only the last read's routes are kept. Safe for concurrent use.
type routeMemo struct {
	mu   sync.Mutex
	last map[string]routeInfo
}

// parseRoutes is the package's parseRoutes, answering from the memo for
// routes unchanged since the last call.
func (m *routeMemo) parseRoutes(b []byte, dir string) ([]routeInfo, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("decoding routes: %w", err)
	}
	m.mu.Lock()
	prev := m.last
	m.mu.Unlock()
	next := make(map[string]routeInfo, len(raws))
	out := make([]routeInfo, 0, len(raws))
	for _, raw := range raws {
		ri, ok := prev[string(raw)]
		if !ok {
			ri = routeInfo{raw: raw}
			if svc, r, legacy, ok := parseRouteIn(raw, dir); ok {
				ri.service, ri.route, ri.legacy = svc, r, legacy
				if dir != "" && r.Upstream == filePlaceholder(dir, svc) {
					ri.file, ri.route.Upstream = true, ""
				}
			}
		}
		next[string(raw)] = ri
		ri.raw = raw
		ri.route.Hostnames = slices.Clone(ri.route.Hostnames) // the caller's own
		out = append(out, ri)
	}
	m.mu.Lock()
	m.last = next
	m.mu.Unlock()
	return out, nil
}
