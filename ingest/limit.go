package ingest

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters hold one token bucket per access key. A key's rate is its
// customer's RateLimit, or the edge's default; the burst is one second of
// rate, and at least one full batch.
type limiters struct {
	def      float64
	minBurst int

	mu sync.RWMutex
	m  map[string]*keyLimiter // by access key; guarded by mu
}

type keyLimiter struct {
	limit float64 // the per-second rate the limiter was set to
	*rate.Limiter
}

func newLimiters(def float64, minBurst int) *limiters {
	return &limiters{def: def, minBurst: minBurst, m: map[string]*keyLimiter{}}
}

// allow takes n tokens from key's bucket; customerLimit 0 means the default.
func (l *limiters) allow(key string, customerLimit, n int, now time.Time) bool {
	limit := l.def
	if customerLimit > 0 {
		limit = float64(customerLimit)
	}
	if limit <= 0 {
		return true
	}
	l.mu.RLock()
	k, ok := l.m[key]
	l.mu.RUnlock()
	if !ok {
		l.mu.Lock()
		if k, ok = l.m[key]; !ok {
			k = &keyLimiter{limit: limit, Limiter: rate.NewLimiter(rate.Limit(limit), l.burst(limit))}
			l.m[strings.Clone(key)] = k
		}
		l.mu.Unlock()
	}
	if k.limit != limit {
		// The customer's rate_limit changed: adopt it. Racing requests
		// set the same values.
		l.mu.Lock()
		k.limit = limit
		k.SetLimit(rate.Limit(limit))
		k.SetBurst(l.burst(limit))
		l.mu.Unlock()
	}
	return k.AllowN(now, n)
}

func (l *limiters) burst(limit float64) int { return max(int(limit), l.minBurst, 1) }
