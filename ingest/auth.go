package ingest

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/streamtools/streamtools/internal/tenant"
)

// authCache remembers the tenant of each valid access key until the
// registry changes, saving the key's SHA-256 on every request. Only
// successes are cached: an unknown and a revoked key both take the
// registry's path, so they stay identical in timing.
type authCache struct {
	gen atomic.Uint64
	m   sync.Map // access key -> authEntry
}

type authEntry struct {
	t   *tenant.Tenant
	gen uint64
}

// invalidate drops every entry; the registry calls it after each change.
func (c *authCache) invalidate() {
	c.gen.Add(1)
	c.m.Clear()
}

func (c *authCache) authenticate(reg *tenant.Registry, key string) (*tenant.Tenant, error) {
	g := c.gen.Load()
	if v, ok := c.m.Load(key); ok {
		if e := v.(authEntry); e.gen == g {
			return e.t, nil
		}
	}
	t, err := reg.Authenticate(key)
	if err != nil {
		return nil, err
	}
	// Stored with the generation read before Authenticate: if the registry
	// changed meanwhile, the entry is already stale and never served.
	c.m.Store(strings.Clone(key), authEntry{t: t, gen: g})
	return t, nil
}
