package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamtools/streamtools/dashboard"
	"github.com/streamtools/streamtools/internal/pgtest"
	"github.com/streamtools/streamtools/sinks"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ev is one row of the BI contract's events table.
type ev struct {
	ID, EventID, Customer, Product, Influencer, EventType, EventName string
	Campaign, Medium, Source, Country                                string
	At                                                               time.Time
	Day                                                              time.Time
	Verdict, Reason                                                  string
}

// testDB makes a fresh database with the migrations applied.
func testDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := sinks.Migrate(ctx, url, nil); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// insert writes events as the sink would (creating their partitions) and
// rebuilds daily_stats from all events, so both tables agree.
func insert(t testing.TB, pool *pgxpool.Pool, events []ev) {
	t.Helper()
	ctx := context.Background()
	days := map[string]bool{}
	for _, e := range events {
		d := e.Day.Format("2006-01-02")
		if !days[d] {
			days[d] = true
			if _, err := pool.Exec(ctx, "SELECT streamtools_events_partition($1)", e.Day); err != nil {
				t.Fatalf("creating partition: %v", err)
			}
		}
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"id", "event_id", "customer_code", "product", "influencer_id", "event_type", "event_name", "campaign",
			"medium", "source", "country", "received_at", "day", "verdict", "reason"},
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
			e := events[i]
			return []any{e.ID, e.EventID, e.Customer, e.Product, e.Influencer, e.EventType, e.EventName, e.Campaign,
				e.Medium, e.Source, e.Country, e.At, e.Day, e.Verdict, e.Reason}, nil
		}))
	if err != nil {
		t.Fatalf("copying events: %v", err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO daily_stats AS d SELECT customer_code, product, influencer_id, campaign, day, event_type,
			count(*) FILTER (WHERE verdict = 'counted'), count(*) FILTER (WHERE verdict = 'duplicate'),
			count(*) FILTER (WHERE reason = 'duplicate_visitor'), count(*) FILTER (WHERE reason = 'duplicate_event_id'), now()
		FROM events GROUP BY 1, 2, 3, 4, 5, 6
		ON CONFLICT (customer_code, product, influencer_id, campaign, day, event_type) DO UPDATE SET
			counted = excluded.counted, duplicates = excluded.duplicates, duplicate_visitor = excluded.duplicate_visitor,
			duplicate_event_id = excluded.duplicate_event_id, updated_at = excluded.updated_at`)
	if err != nil {
		t.Fatalf("building daily_stats: %v", err)
	}
}

func today() time.Time {
	n := time.Now().UTC()
	return time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
}

// demoEvents makes n events of customer over the last 21 days, more on
// recent days: influencers of unequal reach, campaigns (and none), event
// types, countries, sources, and duplicates of both reasons. The choices
// are deterministic; the times follow the clock.
func demoEvents(customer string, n int) []ev {
	rng := rand.New(rand.NewPCG(7, uint64(len(customer))))
	pick := func(weighted ...any) string {
		total := 0
		for i := 1; i < len(weighted); i += 2 {
			total += weighted[i].(int)
		}
		r := rng.IntN(total)
		for i := 0; i < len(weighted); i += 2 {
			if r -= weighted[i+1].(int); r < 0 {
				return weighted[i].(string)
			}
		}
		panic("unreachable")
	}
	out := make([]ev, 0, n)
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		back := time.Duration(21*24*float64(time.Hour)*math.Pow(rng.Float64(), 1.7)) + time.Minute
		at := now.Add(-back).Truncate(time.Second)
		e := ev{
			ID: fmt.Sprintf("%s-%06d", customer, i), Customer: customer,
			Product:    pick("product", 4, "app", 1),
			Influencer: pick("influ_test", 9, "gamer_jane", 7, "speedrun_max", 5, "cozy_cat", 3, "pro_tom", 2, "ana.plays", 1),
			EventType:  pick("reg", 6, "ftd", 2, "download", 3),
			Campaign:   pick("Jan2024_special_event", 3, "summer_launch", 2, "", 4),
			Medium:     pick("Influencer", 5, "Stream overlay", 2),
			Source:     pick("twitch", 6, "youtube", 3, "kick", 1, "", 1),
			Country:    pick("FR", 8, "BE", 2, "DE", 2, "ES", 2, "CA", 1, "CH", 1, "", 1),
			At:         at, Day: time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC), Verdict: "counted",
		}
		if e.EventType == "reg" {
			e.EventName = "registration"
		}
		switch r := rng.IntN(100); {
		case r < 9:
			e.Verdict, e.Reason = "duplicate", "duplicate_visitor"
		case r < 13:
			e.Verdict, e.Reason, e.EventID = "duplicate", "duplicate_event_id", fmt.Sprintf("tx-%d", i/2)
		}
		out = append(out, e)
	}
	return out
}

// sums is what the dashboard should report for a set of events.
type sums struct{ counted, duplicates, visitor, eventID int64 }

func sumOf(events []ev, keep func(ev) bool) sums {
	var s sums
	for _, e := range events {
		if keep != nil && !keep(e) {
			continue
		}
		switch e.Reason {
		case "":
			s.counted++
		case "duplicate_visitor":
			s.duplicates++
			s.visitor++
		case "duplicate_event_id":
			s.duplicates++
			s.eventID++
		}
	}
	return s
}

// running is a dashboard server on a random port.
type running struct {
	URL string
	Srv *dashboard.Server
}

func serve(t testing.TB, pool *pgxpool.Pool, cfg dashboard.Config) running {
	t.Helper()
	srv, err := dashboard.New(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return running{URL: "http://" + ln.Addr().String(), Srv: srv}
}

// client is a browser-like HTTP client with a cookie jar, not following
// redirects so that tests see them.
type client struct {
	t    testing.TB
	base string
	hc   *http.Client
	csrf string
}

func newClient(t testing.TB, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, body io.Reader, header map[string]string) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	st, _, b := c.do("GET", path, nil, nil)
	return st, b
}

// getJSON GETs path, expects 200 and decodes the body into v.
func (c *client) getJSON(path string, v any) {
	c.t.Helper()
	st, b := c.get(path)
	if st != 200 {
		c.t.Fatalf("GET %s: status %d: %s", path, st, b)
	}
	if err := json.Unmarshal([]byte(b), v); err != nil {
		c.t.Fatalf("GET %s: decoding %q: %v", path, b, err)
	}
}

func (c *client) login(login, password string) int {
	c.t.Helper()
	st, _, b := c.do("POST", "/api/v1/login", strings.NewReader(fmt.Sprintf(`{"login":%q,"password":%q}`, login, password)),
		map[string]string{"Content-Type": "application/json"})
	if st == 200 {
		var r struct {
			CSRF string `json:"csrf_token"`
		}
		if err := json.Unmarshal([]byte(b), &r); err != nil {
			c.t.Fatal(err)
		}
		c.csrf = r.CSRF
	}
	return st
}

func mustUser(t testing.TB, pool *pgxpool.Pool, customer, login, password string) {
	t.Helper()
	if _, err := dashboard.CreateUser(context.Background(), pool, customer, login, password); err != nil {
		t.Fatal(err)
	}
}
