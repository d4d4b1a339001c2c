package dashboard

import (
	"strings"
	"sync"
	"time"
)

// loginLimiter slows password guessing: a login gets at most failures
// wrong passwords per window, a client address at most attempts tries per
// clientWindow, whatever the login. Counters live in memory only (client
// addresses are never logged nor stored), so each dashboard instance
// counts for itself.
type loginLimiter struct {
	failures, attempts   int
	window, clientWindow time.Duration
	mu                   sync.Mutex
	byLogin, byClient    map[string]*counter // guarded by mu
	now                  func() time.Time
	maxEntries           int
}

type counter struct {
	n     int
	reset time.Time
}

func newLoginLimiter(failures int, window time.Duration, attempts int, clientWindow time.Duration) *loginLimiter {
	return &loginLimiter{failures: failures, window: window, attempts: attempts, clientWindow: clientWindow,
		byLogin: map[string]*counter{}, byClient: map[string]*counter{}, now: time.Now, maxEntries: 100_000}
}

// allow records an attempt by client for login and says whether it may go
// on; when not, it says after how long it may.
func (l *loginLimiter) allow(client, login string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.get(l.byClient, client, l.clientWindow, now)
	c.n++
	if c.n > l.attempts {
		return false, c.reset.Sub(now)
	}
	if f := l.get(l.byLogin, strings.ToLower(login), l.window, now); f.n >= l.failures {
		return false, f.reset.Sub(now)
	}
	return true, 0
}

// failed records a wrong password for login.
func (l *loginLimiter) failed(login string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(l.byLogin, strings.ToLower(login), l.window, l.now()).n++
}

// succeeded forgets the failures of login.
func (l *loginLimiter) succeeded(login string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byLogin, strings.ToLower(login))
}

func (l *loginLimiter) get(m map[string]*counter, key string, window time.Duration, now time.Time) *counter {
	c, ok := m[key]
	if ok && now.Before(c.reset) {
		return c
	}
	if !ok && len(m) >= l.maxEntries {
		for k, c := range m {
			if !now.Before(c.reset) {
				delete(m, k)
			}
		}
	}
	c = &counter{reset: now.Add(window)}
	m[key] = c
	return c
}
