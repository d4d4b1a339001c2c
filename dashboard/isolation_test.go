package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/streamtools/streamtools/dashboard"
	"github.com/streamtools/streamtools/schemas"
)

// TestCustomerIsolation proves that a login of customer A reads nothing of
// customer B through any route of the server: it walks every route the
// Fiber app has (so a route added later is covered, or fails the test until
// the test knows how to fill its parameters), as A, with B's identifiers
// in every filter and with parameters naming B as the customer.
func TestCustomerIsolation(t *testing.T) {
	pool := testDB(t)
	a := demoEvents("acme", 400)
	b := demoEvents("bravo", 300)
	for i := range b {
		// Values only B's data holds: if one shows up for A, B leaked.
		b[i].ID = fmt.Sprintf("bsecret-id-%d", i)
		b[i].EventName = "bsecret-name"
		b[i].Medium = "bsecret-medium"
		b[i].Source = "bsecret-source"
		b[i].Product = "bsecretproduct"
		b[i].Influencer = "bsecret-influencer"
		b[i].Campaign = "bsecret-campaign"
		b[i].EventType = "bsecret-type"
	}
	insert(t, pool, append(a, b...))
	mustUser(t, pool, "acme", "a@acme.example", pw)
	mustUser(t, pool, "bravo", "b@bravo.example", pw)
	// The products' widget settings, as the customers topic holds them.
	products := map[string]map[string]schemas.Product{
		"acme":  {"product": {Code: "product", Title: "Sign-ups", EventTypes: []string{"reg"}}},
		"bravo": {"bsecretproduct": {Code: "bsecretproduct", Title: "bsecret-title", EventTypes: []string{"bsecret-type"}}},
	}
	srv := serve(t, pool, dashboard.Config{ClientAttempts: 1000, Products: func(c string) (map[string]schemas.Product, bool) {
		p, ok := products[c]
		return p, ok
	}})

	// Markers of B that a request never carries (ids and free text) and
	// markers that A's requests do carry as filter values.
	dataOnly := []string{"bsecret-id-", "bsecret-name", "bsecret-medium", "bsecret-source", "bravo", "bsecret-title"}
	names := []string{"bsecretproduct", "bsecret-influencer", "bsecret-campaign", "bsecret-type"}

	hostile := url.Values{
		"product": {"bsecretproduct"}, "influencer": {"bsecret-influencer"}, "campaign": {"bsecret-campaign"},
		"event_type": {"bsecret-type"}, "customer_code": {"bravo"}, "customer": {"bravo"},
	}.Encode()
	onlyCustomer := url.Values{"customer_code": {"bravo"}, "customer": {"bravo"}}.Encode()

	var paths []string
	routes := srv.Srv.Handler().GetRoutes(true)
	seen := map[string]bool{}
	for _, r := range routes {
		if r.Method == "HEAD" || seen[r.Method+" "+r.Path] {
			continue
		}
		seen[r.Method+" "+r.Path] = true
		var concrete []string
		switch {
		case strings.Contains(r.Path, ":view"):
			for _, v := range []string{"days", "influencers", "campaigns", "event_types", "products", "countries", "sources", "mediums", "events"} {
				concrete = append(concrete, strings.Replace(r.Path, ":view", v, 1))
			}
		case strings.Contains(r.Path, ":file"):
			concrete = []string{strings.Replace(r.Path, ":file", "app.js", 1)}
		case strings.ContainsAny(r.Path, ":*"):
			t.Fatalf("route %s %s has a parameter this test does not know how to fill: teach it", r.Method, r.Path)
		default:
			concrete = []string{r.Path}
		}
		for _, p := range concrete {
			paths = append(paths, r.Method+" "+p)
		}
	}
	if len(seen) < 14 {
		t.Fatalf("only %d routes found: %v", len(seen), routes)
	}

	check := func(t *testing.T, c *client, method, path string, forbidden []string) string {
		t.Helper()
		hdr := map[string]string{"X-CSRF-Token": c.csrf, "X-Customer-Code": "bravo", "Content-Type": "application/json"}
		var body string
		var st int
		if method == "POST" {
			st, _, body = c.do(method, path, strings.NewReader(`{"customer_code":"bravo","login":"a@acme.example","password":"`+pw+`"}`), hdr)
		} else {
			st, _, body = c.do(method, path, nil, hdr)
		}
		for _, m := range forbidden {
			if strings.Contains(body, m) {
				t.Errorf("%s %s (status %d) shows B's %q", method, path, st, m)
			}
		}
		return body
	}

	// A's session, shared by the GET routes; a POST (logout) gets its own.
	shared := newClient(t, srv.URL)
	if st := shared.login("a@acme.example", pw); st != 200 {
		t.Fatal(st)
	}
	clientA := func(method string) *client {
		if method == "GET" {
			return shared
		}
		c := newClient(t, srv.URL)
		if st := c.login("a@acme.example", pw); st != 200 {
			t.Fatal(st)
		}
		return c
	}
	for _, mp := range paths {
		method, path, _ := strings.Cut(mp, " ")
		t.Run(mp, func(t *testing.T) {
			// With B's names in every filter: no B data at all, and every
			// number A gets is zero.
			c := clientA(method)
			c.t = t
			body := check(t, c, method, path+"?"+hostile, dataOnly)
			if strings.HasPrefix(path, "/api/") && method == "GET" && !strings.HasSuffix(path, ".csv") {
				assertNoCounts(t, path, body)
			}
			if strings.HasSuffix(path, ".csv") && strings.Count(strings.TrimSpace(body), "\n") > 0 && !strings.HasSuffix(path, "days.csv") {
				t.Errorf("%s with B's filters has rows:\n%s", path, body)
			}
			// Without filters, naming B only as "customer": nothing of B,
			// names included.
			c = clientA(method)
			c.t = t
			check(t, c, method, path+"?"+onlyCustomer, append(append(dataOnly[:4:4], dataOnly[5]), names...))
		})
	}

	// The markers are reachable: B itself sees them through the same routes.
	t.Run("control: B sees its own data", func(t *testing.T) {
		c := newClient(t, srv.URL)
		c.login("b@bravo.example", pw)
		for _, p := range []string{"/api/v1/overview", "/api/v1/export/events.csv", "/api/v1/options", "/api/v1/views/influencers", "/api/v1/widgets"} {
			_, body := c.get(p)
			if !strings.Contains(body, "bsecret") {
				t.Errorf("B does not see its data in %s: the isolation test proves nothing", p)
			}
		}
	})
}

// assertNoCounts fails when a JSON body holds a non-zero count or a row.
func assertNoCounts(t *testing.T, path, body string) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return // not JSON (a page): the marker check covers it
	}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case float64:
			switch key {
			case "counted", "duplicates", "duplicate_visitor", "duplicate_event_id":
				if x != 0 {
					t.Errorf("%s: %s = %v with B's filters", path, key, x)
				}
			}
		}
	}
	walk("", v)
}
