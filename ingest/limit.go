package ingest

import (
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters hold one token bucket per access key. A key's rate is its
// customer's RateLimit, or the edge's default; the burst is one second of
// that rate (at least one postback): a key limited to 10/s sends at most
// 10 postbacks at once, however many connections it opens. A batch takes
// one token per item, so a batch larger than the burst can never pass: it
// is refused as such (tooLarge), not answered 429, since retrying would not
// help.
type limiters struct {
	def float64

	mu sync.RWMutex
	m  map[string]*keyLimiter // by access key; guarded by mu
}

type keyLimiter struct {
	limit float64 // the per-second rate the limiter was set to
	*rate.Limiter
}

// verdict is the answer of limiters.allow.
type verdict int

const (
	allowed  verdict = iota
	limited          // over the rate: 429, retry later
	tooLarge         // n is above the key's burst: split the batch
)

func newLimiters(def float64) *limiters {
	return &limiters{def: def, m: map[string]*keyLimiter{}}
}

// burst is the bucket size of a rate: one second of it, at least 1.
func burst(limit float64) int {
	if limit >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(int(math.Ceil(limit)), 1)
}

// allow takes n tokens from key's bucket; customerLimit 0 means the
// default. With tooLarge it also returns the key's burst, the most items a
// batch of this key may hold.
func (l *limiters) allow(key string, customerLimit, n int, now time.Time) (verdict, int) {
	limit := l.def
	if customerLimit > 0 {
		limit = float64(customerLimit)
	}
	if limit <= 0 {
		return allowed, 0
	}
	l.mu.RLock()
	k, ok := l.m[key]
	l.mu.RUnlock()
	if !ok {
		l.mu.Lock()
		if k, ok = l.m[key]; !ok {
			k = &keyLimiter{limit: limit, Limiter: rate.NewLimiter(rate.Limit(limit), burst(limit))}
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
		k.SetBurst(burst(limit))
		l.mu.Unlock()
	}
	if b := burst(limit); n > b {
		return tooLarge, b
	}
	if !k.AllowN(now, n) {
		return limited, 0
	}
	return allowed, 0
}
