package dashboard

import (
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLoginLimiter(3, 15*time.Minute, 5, time.Minute)
	l.now = func() time.Time { return now }

	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("c1", "Ann"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		l.failed("ann")
	}
	ok, wait := l.allow("c1", "ANN")
	if ok || wait != 15*time.Minute {
		t.Errorf("after 3 failures: allowed=%v wait=%v, want refused for 15m", ok, wait)
	}
	if ok, _ := l.allow("c2", "bob"); !ok {
		t.Error("another login from another client is refused")
	}
	now = now.Add(15 * time.Minute)
	if ok, _ := l.allow("c3", "ann"); !ok {
		t.Error("the window passed but the login is still refused")
	}
	l.succeeded("ann")

	// The per-client limit counts every attempt, whatever the login.
	for i := 0; i < 5; i++ {
		l.allow("c9", "guess"+string(rune('a'+i)))
	}
	if ok, wait := l.allow("c9", "bob"); ok || wait != time.Minute {
		t.Errorf("client over its attempts: allowed=%v wait=%v", ok, wait)
	}
	now = now.Add(time.Minute)
	if ok, _ := l.allow("c9", "bob"); !ok {
		t.Error("client still refused after its window")
	}
}

func TestLoginLimiterStaysBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLoginLimiter(3, time.Minute, 5, time.Minute)
	l.now = func() time.Time { return now }
	l.maxEntries = 100
	for i := 0; i < 1000; i++ {
		if i%100 == 0 {
			now = now.Add(2 * time.Minute) // older entries expire
		}
		l.failed(string(rune(i)))
	}
	if n := len(l.byLogin); n > 100 {
		t.Errorf("%d entries kept, want at most 100", n)
	}
}
