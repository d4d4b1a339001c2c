package ingest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

func TestLimiters(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name          string
		def           float64
		customerLimit int
		n             int   // tokens per call
		calls         int   // at t0
		want          []int // verdicts, in order
	}{
		{"10/s: a burst of 10, then 429", 100000, 10, 1, 12, []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}},
		{"10/s: a batch of 10 passes once", 100000, 10, 10, 2, []int{0, 1}},
		{"10/s: a batch of 11 is too large", 100000, 10, 11, 1, []int{2}},
		{"1/s: one, then 429", 100000, 1, 1, 2, []int{0, 1}},
		{"default 3.5/s: burst 4", 3.5, 0, 1, 5, []int{0, 0, 0, 0, 1}},
		{"default 0.2/s: burst 1", 0.2, 0, 1, 2, []int{0, 1}},
		{"no default limit", -1, 0, 5000, 3, []int{0, 0, 0}},
		{"default 100000/s: a batch of 1000 passes", 100000, 0, 1000, 3, []int{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiters(tt.def)
			var got []int
			for range tt.calls {
				v, _ := l.allow("key", tt.customerLimit, tt.n, t0)
				got = append(got, int(v))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("verdicts %v, want %v (0 allowed, 1 limited, 2 too large)", got, tt.want)
			}
		})
	}
	t.Run("refills at the rate", func(t *testing.T) {
		l := newLimiters(100000)
		for range 10 {
			l.allow("k", 10, 1, t0)
		}
		if v, _ := l.allow("k", 10, 1, t0.Add(50*time.Millisecond)); v != limited {
			t.Errorf("after 50 ms: %v, want limited", v)
		}
		if v, _ := l.allow("k", 10, 1, t0.Add(150*time.Millisecond)); v != allowed {
			t.Errorf("after 150 ms: %v, want allowed (one token back)", v)
		}
	})
	t.Run("a changed rate_limit changes the burst", func(t *testing.T) {
		l := newLimiters(100000)
		l.allow("k", 1000, 1, t0)
		if v, most := l.allow("k", 10, 20, t0); v != tooLarge || most != 10 {
			t.Errorf("batch of 20 at 10/s: %v, %d; want too large, at most 10", v, most)
		}
	})
}

// TestRateLimitBurst fires 1,000 concurrent postbacks at a key limited to
// 10/s: at most about a burst (10, plus what refills meanwhile) get 202,
// the others 429 with Retry-After; another key, sending meanwhile, is
// unaffected.
func TestRateLimitBurst(t *testing.T) {
	e := startEdge(t, nil)
	cl := kafkatest.Client(t, e.b.Addr())
	ctx := context.Background()
	if err := tenant.PutCustomer(ctx, cl, e.names, schemas.Customer{Code: "ten", TimeZone: "UTC", RateLimit: 10}); err != nil {
		t.Fatal(err)
	}
	const tenKey = "ten-per-second-key"
	if _, err := tenant.PutKey(ctx, cl, e.names, tenKey, "ten", "ten"); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 10*time.Second, "the new key known", func() bool {
		_, err := e.reg.Authenticate(tenKey)
		return err == nil
	})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 1000}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	post := func(key string) (int, string, error) {
		resp, err := client.Post(e.url+"/"+key, "application/json", strings.NewReader(`{"influencer_id":"a","product":"p"}`))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return 0, "", err
		}
		return resp.StatusCode, resp.Header.Get("Retry-After"), nil
	}

	const n = 1000
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		codes          = map[int]int{}
		noRetry, fails int
		other          = map[int]int{}
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			code, retry, err := post(tenKey)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			codes[code]++
			if code == 429 && retry == "" {
				noRetry++
			}
		})
	}
	// Another customer's key, sending while the flood lasts.
	otherDone := make(chan struct{})
	go func() {
		defer close(otherDone)
		for range 50 {
			code, _, err := post(anyProdKey)
			mu.Lock()
			if err != nil {
				fails++
			} else {
				other[code]++
			}
			mu.Unlock()
		}
	}()
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	<-otherDone

	// The burst is 10; at 10/s, about 10 more tokens come back per second
	// of the flood.
	most := 10 + int(10*elapsed.Seconds()) + 1
	t.Logf("1,000 concurrent postbacks in %v: %v; the other key: %v", elapsed.Round(time.Millisecond), codes, other)
	if fails > 0 {
		t.Fatalf("%d requests failed at the transport", fails)
	}
	if codes[202] < 1 || codes[202] > most {
		t.Errorf("%d postbacks of the 10/s key accepted, want 1 to %d", codes[202], most)
	}
	if codes[202]+codes[429] != n {
		t.Errorf("statuses %v: want only 202 and 429", codes)
	}
	if noRetry > 0 {
		t.Errorf("%d answers 429 without Retry-After", noRetry)
	}
	if other[202] != 50 {
		t.Errorf("the other key got %v, want 50 × 202", other)
	}
}
