package caddy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ensure runs in the writer goroutine. Each round reads the whole config
// with its ETag, makes the first change still needed with If-Match on that
// ETag, and reads again, until nothing is left to do. Every change is a
// targeted write below apps.http, so other apps and servers are never
// rewritten.
func (c *Client) ensure(ctx context.Context) error {
	for attempt := 0; attempt < 2*maxAttempts; attempt++ {
		resp, err := c.do(ctx, http.MethodGet, "/config/", nil, "")
		if err != nil {
			return fmt.Errorf("caddy ensure: %w", err)
		}
		var root map[string]any
		if err := json.Unmarshal(resp.body, &root); err != nil {
			return fmt.Errorf("caddy ensure: decoding config: %w", err)
		}
		method, path, body, err := c.nextEnsureStep(root)
		if err != nil {
			return err
		}
		if path == "" {
			return nil
		}
		err = c.write(ctx, method, path, body, resp.etag)
		if isStatus(err, http.StatusPreconditionFailed) {
			c.stats.conflicts.Add(1)
			continue
		}
		if err != nil {
			return fmt.Errorf("caddy ensure: %w", err)
		}
	}
	return fmt.Errorf("caddy ensure: %d attempts: %w", 2*maxAttempts, ErrConflict)
}

// nextEnsureStep returns the first write Ensure still has to make, or an
// empty path when the config is as it should be.
func (c *Client) nextEnsureStep(root map[string]any) (method, path string, body []byte, err error) {
	server, err := renderServer(c.cfg.Listen)
	if err != nil {
		return "", "", nil, fmt.Errorf("caddy ensure: %w", err)
	}
	grace := mustJSON(formatDuration(c.cfg.GracePeriod))

	apps, _ := root["apps"].(map[string]any)
	httpApp, hasHTTP := apps["http"].(map[string]any)
	if !hasHTTP {
		// The http app is missing (or null): create it with our server.
		b, _ := json.Marshal(map[string]json.RawMessage{
			"grace_period": grace,
			"servers":      mustJSON(map[string]json.RawMessage{c.cfg.Server: server}),
		})
		return putOrPatch(apps, "http"), "/config/apps/http", b, nil
	}
	servers, _ := httpApp["servers"].(map[string]any)
	srv, hasSrv := servers[c.cfg.Server].(map[string]any)
	if !hasSrv {
		return putOrPatch(servers, c.cfg.Server), c.srvPath, server, nil
	}
	if !sameValue(srv["listen"], c.cfg.Listen) {
		return putOrPatch(srv, "listen"), c.srvPath + "/listen", mustJSON(c.cfg.Listen), nil
	}
	auto, hasAuto := srv["automatic_https"].(map[string]any)
	if !hasAuto {
		return putOrPatch(srv, "automatic_https"), c.srvPath + "/automatic_https", mustJSON(autoHTTPSJSON{Disable: true}), nil
	}
	if auto["disable"] != true {
		return putOrPatch(auto, "disable"), c.srvPath + "/automatic_https/disable", []byte("true"), nil
	}
	routes, ok := srv["routes"].([]any)
	if !ok {
		return putOrPatch(srv, "routes"), c.srvPath + "/routes", mustJSON([]json.RawMessage{fallbackRoute}), nil
	}
	if body, ok, err := takeOverLegacy(routes); err != nil {
		return "", "", nil, err
	} else if ok {
		// One write replaces every legacy route in place: Caddy swaps
		// its config atomically, so no request finds its host unrouted.
		return http.MethodPatch, c.srvPath + "/routes", body, nil
	}
	switch i := fallbackIndex(routes); {
	case i < 0:
		// POST to an array appends: the fallback goes last.
		return http.MethodPost, c.srvPath + "/routes", fallbackRoute, nil
	case i != len(routes)-1:
		// Routes were appended after it and could never match: take it
		// out; the next round appends it again.
		return http.MethodDelete, "/id/" + FallbackID, nil, nil
	}
	if d, err := parseDuration(httpApp["grace_period"]); err != nil || d <= 0 {
		return putOrPatch(httpApp, "grace_period"), "/config/apps/http/grace_period", grace, nil
	}
	return "", "", nil, nil
}

// putOrPatch picks the admin method that sets key in parent: PUT creates a
// key (and missing parents) and fails with 409 when it exists, PATCH
// replaces an existing key (even one whose value is null).
func putOrPatch(parent map[string]any, key string) string {
	if _, ok := parent[key]; ok {
		return http.MethodPatch
	}
	return http.MethodPut
}

// sameValue compares a decoded JSON value with a Go value by their JSON.
func sameValue(got any, want any) bool {
	a, err := json.Marshal(got)
	if err != nil {
		return false
	}
	return sameJSON(a, mustJSON(want))
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("caddy: encoding %T: %v", v, err))
	}
	return b
}

// fallbackIndex is the index of the route with @id FallbackID, or -1.
func fallbackIndex(routes []any) int {
	for i, r := range routes {
		if m, ok := r.(map[string]any); ok && m["@id"] == FallbackID {
			return i
		}
	}
	return -1
}

// takeOverLegacy returns the routes array with every route that carries a
// legacy @id (jailkeeper_<service>) rewritten as Set writes it now
// (jailkeeper.route.<service>, handler jailkeeper.proxy.<service>), same
// hostnames, upstream and stream_close_delay, at the same place; ok is
// false when there is none. The hostnames are carried over as they are,
// unchecked: the take-over changes the @ids only, and the next Set of the
// service writes what its manifest says.
func takeOverLegacy(routes []any) (body []byte, ok bool, err error) {
	// Nearly always there is none: look at the @ids before encoding
	// every route (issue 11: an idle pass's cost).
	if !slices.ContainsFunc(routes, maybeLegacy) {
		return nil, false, nil
	}
	out := make([]json.RawMessage, len(routes))
	for i, r := range routes {
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, false, fmt.Errorf("caddy ensure: %w", err)
		}
		out[i] = raw
		if _, route, legacy, isOurs := parseRoute(raw); isOurs && legacy {
			if out[i], err = route.render(); err != nil {
				return nil, false, fmt.Errorf("caddy ensure: route %s: %w", route.Service, err)
			}
			ok = true
		}
	}
	if !ok {
		return nil, false, nil
	}
	body, err = json.Marshal(out)
	return body, true, err
}

// maybeLegacy reports whether route (decoded JSON) has an @id of the
// legacy form; the fallback's does not count.
func maybeLegacy(route any) bool {
	m, _ := route.(map[string]any)
	id, _ := m["@id"].(string)
	return strings.HasPrefix(id, legacyPrefix) && id != FallbackID
}
