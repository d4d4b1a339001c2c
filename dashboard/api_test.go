package dashboard_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamtools/streamtools/dashboard"
)

const pw = "correct horse battery"

type totalsResp struct {
	Filter map[string]string `json:"filter"`
	Totals dashboard.Totals  `json:"totals"`
}

type viewResp struct {
	Rows []map[string]any `json:"rows"`
	More bool             `json:"more"`
}

func TestLoginAndSession(t *testing.T) {
	pool := testDB(t)
	mustUser(t, pool, "acme", "marketing@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{})

	t.Run("json login sets an HttpOnly SameSite cookie", func(t *testing.T) {
		c := newClient(t, srv.URL)
		st, hdr, body := c.do("POST", "/api/v1/login", strings.NewReader(`{"login":"Marketing@ACME.example","password":"`+pw+`"}`),
			map[string]string{"Content-Type": "application/json"})
		if st != 200 || !strings.Contains(body, `"customer_code":"acme"`) {
			t.Fatalf("login: %d %s", st, body)
		}
		ck := hdr.Get("Set-Cookie")
		for _, want := range []string{"st_session=", "HttpOnly", "SameSite=Lax", "path=/"} {
			if !strings.Contains(ck, want) {
				t.Errorf("Set-Cookie %q lacks %q", ck, want)
			}
		}
		if st, h, _ := c.do("GET", "/login?next=/influencers", nil, nil); st != 303 || h.Get("Location") != "/influencers" {
			t.Errorf("the login page with a session: %d to %q, want 303 to /influencers", st, h.Get("Location"))
		}
		var me map[string]any
		c.getJSON("/api/v1/me", &me)
		if me["customer_code"] != "acme" || me["login"] != "marketing@acme.example" {
			t.Errorf("me = %v", me)
		}
	})

	t.Run("wrong password and unknown login answer alike", func(t *testing.T) {
		c := newClient(t, srv.URL)
		_, _, wrong := c.do("POST", "/api/v1/login", strings.NewReader(`{"login":"marketing@acme.example","password":"nope"}`),
			map[string]string{"Content-Type": "application/json"})
		st, _, unknown := c.do("POST", "/api/v1/login", strings.NewReader(`{"login":"nobody@acme.example","password":"nope"}`),
			map[string]string{"Content-Type": "application/json"})
		if st != 401 || wrong != unknown || !strings.Contains(wrong, `"field":"password"`) {
			t.Errorf("got %d %s vs %s", st, wrong, unknown)
		}
	})

	t.Run("json login needs a JSON content type", func(t *testing.T) {
		c := newClient(t, srv.URL)
		st, _, body := c.do("POST", "/api/v1/login", strings.NewReader(`login=marketing@acme.example&password=x`),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if st != 415 || !strings.Contains(body, `"field":"Content-Type"`) {
			t.Errorf("got %d %s", st, body)
		}
	})

	t.Run("form login needs its CSRF token", func(t *testing.T) {
		c := newClient(t, srv.URL)
		st, page := c.get("/login?next=/influencers")
		if st != 200 {
			t.Fatalf("GET /login: %d", st)
		}
		m := regexp.MustCompile(`name="_csrf" value="([0-9a-f]{64})"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no CSRF token in the login form")
		}
		form := url.Values{"login": {"marketing@acme.example"}, "password": {pw}, "next": {"/influencers"}}
		hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		if st, _, _ := c.do("POST", "/login", strings.NewReader(form.Encode()), hdr); st != 403 {
			t.Errorf("without token: %d, want 403", st)
		}
		form.Set("_csrf", m[1])
		st, h, _ := c.do("POST", "/login", strings.NewReader(form.Encode()), hdr)
		if st != 303 || h.Get("Location") != "/influencers" {
			t.Errorf("with token: %d to %q, want 303 to /influencers", st, h.Get("Location"))
		}
		// A login CSRF from another site has no cookie: a fresh client fails.
		other := newClient(t, srv.URL)
		if st, _, _ := other.do("POST", "/login", strings.NewReader(form.Encode()), hdr); st != 403 {
			t.Errorf("foreign token: %d, want 403", st)
		}
	})

	t.Run("open redirects are refused", func(t *testing.T) {
		c := newClient(t, srv.URL)
		_, page := c.get("/login?next=//evil.example/")
		if strings.Contains(page, "evil") {
			t.Error("the login form carries a foreign next URL")
		}
	})

	t.Run("logout needs the session's CSRF token and ends the session", func(t *testing.T) {
		c := newClient(t, srv.URL)
		if st := c.login("marketing@acme.example", pw); st != 200 {
			t.Fatal(st)
		}
		if st, _, body := c.do("POST", "/api/v1/logout", nil, nil); st != 403 || !strings.Contains(body, `"field":"_csrf"`) {
			t.Errorf("logout without token: %d %s", st, body)
		}
		if st, _, _ := c.do("POST", "/logout", strings.NewReader("_csrf=bad"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); st != 403 {
			t.Errorf("form logout with a bad token: %d", st)
		}
		if st, _, _ := c.do("POST", "/api/v1/logout", nil, map[string]string{"X-CSRF-Token": c.csrf}); st != 200 {
			t.Errorf("logout: %d", st)
		}
		if st, _ := c.get("/api/v1/me"); st != 401 {
			t.Errorf("after logout: %d, want 401", st)
		}
	})

	t.Run("pages redirect to the login", func(t *testing.T) {
		c := newClient(t, srv.URL)
		st, h, _ := c.do("GET", "/influencers?campaign=x", nil, nil)
		if st != 303 || h.Get("Location") != "/login?next="+url.QueryEscape("/influencers?campaign=x") {
			t.Errorf("got %d to %q", st, h.Get("Location"))
		}
	})

	t.Run("deleting a user ends its sessions", func(t *testing.T) {
		mustUser(t, pool, "acme", "temp@acme.example", pw)
		c := newClient(t, srv.URL)
		if st := c.login("temp@acme.example", pw); st != 200 {
			t.Fatal(st)
		}
		if err := dashboard.DeleteUser(t.Context(), pool, "TEMP@acme.example"); err != nil {
			t.Fatal(err)
		}
		if st, _ := c.get("/api/v1/me"); st != 401 {
			t.Errorf("after delete: %d, want 401", st)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	pool := testDB(t)
	mustUser(t, pool, "acme", "a@acme.example", pw)
	mustUser(t, pool, "acme", "b@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{LoginFailures: 3, ClientAttempts: 100})
	c := newClient(t, srv.URL)
	for i := 0; i < 3; i++ {
		if st := c.login("a@acme.example", "wrong"); st != 401 {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	st, h, body := c.do("POST", "/api/v1/login", strings.NewReader(`{"login":"a@acme.example","password":"`+pw+`"}`),
		map[string]string{"Content-Type": "application/json"})
	if st != 429 || h.Get("Retry-After") == "" {
		t.Errorf("after 3 failures, even the right password: %d %s (Retry-After %q), want 429", st, body, h.Get("Retry-After"))
	}
	if st := c.login("b@acme.example", pw); st != 200 {
		t.Errorf("another login: %d, want 200", st)
	}

	srv2 := serve(t, pool, dashboard.Config{ClientAttempts: 4})
	c2 := newClient(t, srv2.URL)
	for i := 0; i < 4; i++ {
		c2.login(fmt.Sprintf("guess%d@acme.example", i), "x")
	}
	if st := c2.login("b@acme.example", pw); st != 429 {
		t.Errorf("a client over its attempts: %d, want 429", st)
	}
}

func TestAPIFiguresMatchTheEvents(t *testing.T) {
	pool := testDB(t)
	events := demoEvents("acme", 3000)
	insert(t, pool, events)
	mustUser(t, pool, "acme", "m@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{})
	c := newClient(t, srv.URL)
	if st := c.login("m@acme.example", pw); st != 200 {
		t.Fatal(st)
	}
	d := func(back int) time.Time { return today().AddDate(0, 0, -back) }
	ds := func(back int) string { return d(back).Format("2006-01-02") }
	cases := []struct {
		name  string
		query string
		keep  func(ev) bool
	}{
		{"everything", "", nil},
		{"date range", "from=" + ds(6) + "&to=" + ds(2), func(e ev) bool { return !e.Day.Before(d(6)) && !e.Day.After(d(2)) }},
		{"campaign", "campaign=summer_launch", func(e ev) bool { return e.Campaign == "summer_launch" }},
		{"no campaign", "campaign=(none)", func(e ev) bool { return e.Campaign == "" }},
		{"influencer", "influencer=gamer_jane", func(e ev) bool { return e.Influencer == "gamer_jane" }},
		{"product", "product=app", func(e ev) bool { return e.Product == "app" }},
		{"event type", "event_type=ftd", func(e ev) bool { return e.EventType == "ftd" }},
		{"all at once", "from=" + ds(10) + "&to=" + ds(0) + "&product=product&influencer=influ_test&campaign=Jan2024_special_event&event_type=reg",
			func(e ev) bool {
				return !e.Day.Before(d(10)) && e.Product == "product" && e.Influencer == "influ_test" &&
					e.Campaign == "Jan2024_special_event" && e.EventType == "reg"
			}},
		{"nothing matches", "influencer=nobody", func(ev) bool { return false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := sumOf(events, tc.keep)
			var s totalsResp
			c.getJSON("/api/v1/summary?"+tc.query, &s)
			got := sums{s.Totals.Counted, s.Totals.Duplicates, s.Totals.DuplicateVisitor, s.Totals.DuplicateEventID}
			if got != want {
				t.Fatalf("summary = %+v, want %+v", got, want)
			}
			// Every table, from daily_stats or from events, adds up to the totals.
			for _, v := range []string{"days", "influencers", "campaigns", "event_types", "products", "countries", "sources", "mediums"} {
				var r viewResp
				c.getJSON("/api/v1/views/"+v+"?limit=5000&"+tc.query, &r)
				var sum sums
				for _, row := range r.Rows {
					sum.counted += int64(row["counted"].(float64))
					sum.duplicates += int64(row["duplicates"].(float64))
					sum.visitor += int64(row["duplicate_visitor"].(float64))
					sum.eventID += int64(row["duplicate_event_id"].(float64))
				}
				if sum != want {
					t.Errorf("view %s adds up to %+v, want %+v", v, sum, want)
				}
			}
			var e viewResp
			c.getJSON("/api/v1/views/events?limit=5000&"+tc.query, &e)
			if int64(len(e.Rows)) != want.counted+want.duplicates {
				t.Errorf("events view: %d rows, want %d", len(e.Rows), want.counted+want.duplicates)
			}
		})
	}

	t.Run("country breakdown", func(t *testing.T) {
		want := map[string]sums{}
		for _, e := range events {
			want[e.Country] = sumOf([]ev{e}, nil).add(want[e.Country])
		}
		var r viewResp
		c.getJSON("/api/v1/views/countries", &r)
		if len(r.Rows) != len(want) {
			t.Fatalf("%d countries, want %d", len(r.Rows), len(want))
		}
		prev := int64(1 << 62)
		for _, row := range r.Rows {
			w := want[row["country"].(string)]
			if got := int64(row["counted"].(float64)); got != w.counted || got > prev {
				t.Errorf("country %q: counted %v, want %d, in decreasing order", row["country"], got, w.counted)
			}
			prev = int64(row["counted"].(float64))
		}
	})

	t.Run("series has every day of the range, zeros included", func(t *testing.T) {
		from, to := ds(40), ds(0)
		var r viewResp
		c.getJSON("/api/v1/views/days?limit=5000&from="+from+"&to="+to, &r)
		if len(r.Rows) != 41 || r.Rows[0]["day"] != from || r.Rows[40]["day"] != to {
			t.Fatalf("%d days from %v to %v, want 41 from %s to %s", len(r.Rows), r.Rows[0]["day"], r.Rows[len(r.Rows)-1]["day"], from, to)
		}
		if r.Rows[0]["counted"].(float64) != 0 {
			t.Errorf("day %s: %v, want 0", from, r.Rows[0])
		}
	})

	t.Run("paging", func(t *testing.T) {
		var all viewResp
		c.getJSON("/api/v1/views/influencers?limit=5000", &all)
		var paged []map[string]any
		for off := 0; ; off += 5 {
			var p viewResp
			c.getJSON(fmt.Sprintf("/api/v1/views/influencers?limit=5&offset=%d", off), &p)
			paged = append(paged, p.Rows...)
			if !p.More {
				break
			}
		}
		if len(all.Rows) != 12 || fmt.Sprint(paged) != fmt.Sprint(all.Rows) {
			t.Errorf("pages of 5 give %d rows, one page %d (want 12, the same)", len(paged), len(all.Rows))
		}
	})

	t.Run("overview holds everything the page shows", func(t *testing.T) {
		var o struct {
			Totals dashboard.Totals    `json:"totals"`
			Views  map[string]viewResp `json:"views"`
		}
		c.getJSON("/api/v1/overview?campaign=summer_launch", &o)
		if o.Totals.Counted != sumOf(events, func(e ev) bool { return e.Campaign == "summer_launch" }).counted {
			t.Errorf("overview totals %+v", o.Totals)
		}
		for _, v := range []string{"days", "influencers", "campaigns", "event_types", "products", "countries", "sources", "mediums", "events"} {
			if len(o.Views[v].Rows) == 0 {
				t.Errorf("overview lacks view %s", v)
			}
		}
		if len(o.Views["days"].Rows) != 30 {
			t.Errorf("overview series: %d days, want the default 30", len(o.Views["days"].Rows))
		}
	})

	t.Run("options", func(t *testing.T) {
		var o dashboard.Options
		c.getJSON("/api/v1/options", &o)
		if strings.Join(o.Products, ",") != "app,product" || len(o.Influencers) != 6 ||
			strings.Join(o.Campaigns, ",") != "Jan2024_special_event,summer_launch" || strings.Join(o.EventTypes, ",") != "download,ftd,reg" {
			t.Errorf("options = %+v", o)
		}
	})
}

func (s sums) add(o sums) sums {
	return sums{s.counted + o.counted, s.duplicates + o.duplicates, s.visitor + o.visitor, s.eventID + o.eventID}
}

func TestAPIErrors(t *testing.T) {
	pool := testDB(t)
	mustUser(t, pool, "acme", "m@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{})
	c := newClient(t, srv.URL)
	if st, body := c.get("/api/v1/summary"); st != 401 || !strings.Contains(body, `"error"`) {
		t.Errorf("no session: %d %s", st, body)
	}
	c.login("m@acme.example", pw)
	cases := []struct {
		path   string
		status int
		field  string
	}{
		{"/api/v1/summary?from=2024-13-01", 400, "from"},
		{"/api/v1/summary?to=yesterday", 400, "to"},
		{"/api/v1/summary?from=2024-02-01&to=2024-01-01", 400, "from"},
		{"/api/v1/views/days?from=2000-01-01&to=2024-01-01", 400, "from"},
		{"/api/v1/views/nope", 404, "view"},
		{"/api/v1/export/nope.csv", 404, "view"},
		{"/api/v1/views/events?limit=0", 400, "limit"},
		{"/api/v1/views/events?limit=5001", 400, "limit"},
		{"/api/v1/views/events?offset=-1", 400, "offset"},
		{"/api/v1/summary?influencer=" + strings.Repeat("x", 600), 400, "influencer"},
		{"/api/v1/nothing", 404, ""},
	}
	for _, tc := range cases {
		st, body := c.get(tc.path)
		if st != tc.status || (tc.field != "" && !strings.Contains(body, `"field":"`+tc.field+`"`)) || !strings.Contains(body, `"error":`) {
			t.Errorf("GET %s: %d %s, want %d naming field %q", tc.path, st, body, tc.status, tc.field)
		}
	}
}

// TestMethodNotAllowed: a method without a route on a known path answers
// 405 with Allow, in the JSON error format on /api/*; HEAD on the export
// is one (it would run the whole export for its headers), HEAD on a GET
// page or endpoint is not.
func TestMethodNotAllowed(t *testing.T) {
	pool := testDB(t)
	mustUser(t, pool, "acme", "m@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{})
	c := newClient(t, srv.URL)
	c.login("m@acme.example", pw)
	csrf := map[string]string{"X-CSRF-Token": c.csrf}
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"HEAD", "/api/v1/export/events.csv", 405, "GET"},
		{"POST", "/api/v1/export/events.csv", 405, "GET"},
		{"DELETE", "/api/v1/summary", 405, "GET, HEAD"},
		{"PUT", "/api/v1/login", 405, "POST"},
		{"GET", "/api/v1/logout", 405, "POST"},
		{"HEAD", "/api/v1/summary", 200, ""},
		{"HEAD", "/healthz", 200, ""},
		{"DELETE", "/api/v1/nothing", 404, ""},
	} {
		st, h, body := c.do(tc.method, tc.path, nil, csrf)
		if st != tc.status || h.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q (%s)", tc.method, tc.path, st, h.Get("Allow"), tc.status, tc.allow, body)
		}
		if st >= 400 && !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: Content-Type %q, want the JSON error", tc.method, tc.path, h.Get("Content-Type"))
		}
		if st == 405 && tc.method != "HEAD" && !strings.Contains(body, `"error":"method `+tc.method+` is not allowed here (allowed: `+tc.allow+`)`) {
			t.Errorf("%s %s: body %s, want a JSON error naming the allowed methods", tc.method, tc.path, body)
		}
	}
	// Pages get the error page.
	if st, h, _ := c.do("DELETE", "/influencers", nil, csrf); st != 405 || h.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE /influencers: %d, Allow %q; want 405, Allow GET, HEAD", st, h.Get("Allow"))
	}
}

func TestExportStreamsEveryRow(t *testing.T) {
	pool := testDB(t)
	events := demoEvents("acme", 30000)
	events[0].Influencer = `=HYPERLINK("http://evil.example","x")`
	insert(t, pool, events)
	mustUser(t, pool, "acme", "m@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{})
	c := newClient(t, srv.URL)
	c.login("m@acme.example", pw)

	start := time.Now()
	st, h, body := c.do("GET", "/api/v1/export/events.csv", nil, nil)
	took := time.Since(start)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", st, h)
	}
	if h.Get("Transfer-Encoding") != "" || h.Get("Content-Length") != "" {
		// net/http strips Transfer-Encoding; a streamed body has no length.
		if h.Get("Content-Length") != "" {
			t.Errorf("export has a Content-Length: it was buffered")
		}
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(events)+1 || recs[0][0] != "received_at" {
		t.Fatalf("%d CSV records, want %d plus a header", len(recs), len(events))
	}
	t.Logf("exported %d events in %v (%.0f rows/s)", len(events), took, float64(len(events))/took.Seconds())
	if !strings.Contains(body, `'=HYPERLINK(`) {
		t.Error("a formula-like id is not neutralised in the CSV")
	}
	st, _, body = c.do("GET", "/api/v1/export/influencers.csv?campaign=summer_launch", nil, nil)
	recs, _ = csv.NewReader(strings.NewReader(body)).ReadAll()
	if st != 200 || len(recs) < 2 || recs[0][7] != "widget_url" || !strings.HasSuffix(recs[1][7], "/summer_launch") {
		t.Errorf("influencers CSV: %d %v", st, recs[:2])
	}
}

func TestWidgetURLs(t *testing.T) {
	pool := testDB(t)
	insert(t, pool, []ev{{ID: "1", Customer: "acme", Product: "shop", Influencer: "Zoé la streameuse", EventType: "reg",
		Campaign: "Été 2024/1", At: today(), Day: today(), Verdict: "counted"}})
	mustUser(t, pool, "acme", "m@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{WidgetBaseURL: "https://w.example:8443/base/", WidgetDomain: "example.org"})
	c := newClient(t, srv.URL)
	c.login("m@acme.example", pw)
	for _, tc := range []struct{ query, path, public string }{
		{"", "https://w.example:8443/base/acme/shop/Zo%C3%A9%20la%20streameuse", "https://shop-widget-acme.example.org/Zo%C3%A9%20la%20streameuse"},
		{"?campaign=" + url.QueryEscape("Été 2024/1"), "https://w.example:8443/base/acme/shop/Zo%C3%A9%20la%20streameuse/%C3%89t%C3%A9%202024%2F1",
			"https://shop-widget-acme.example.org/Zo%C3%A9%20la%20streameuse/%C3%89t%C3%A9%202024%2F1"},
	} {
		var r viewResp
		c.getJSON("/api/v1/views/influencers"+tc.query, &r)
		if len(r.Rows) != 1 || r.Rows[0]["widget_url"] != tc.path || r.Rows[0]["widget_public_url"] != tc.public {
			t.Errorf("%s: %v", tc.query, r.Rows)
		}
	}
}

func TestPagesAndAssets(t *testing.T) {
	pool := testDB(t)
	mustUser(t, pool, "acme", "m@acme.example", pw)
	srv := serve(t, pool, dashboard.Config{})
	c := newClient(t, srv.URL)
	c.login("m@acme.example", pw)
	for _, p := range []string{"/", "/influencers"} {
		st, h, body := c.do("GET", p, nil, nil)
		if st != 200 || !strings.Contains(body, "acme") || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") ||
			h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: %d %v", p, st, h)
		}
		for _, m := range regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(body, -1) {
			st, h, _ := c.do("GET", strings.ReplaceAll(m[1], "&amp;", "&"), nil, nil)
			if st != 200 || !strings.Contains(h.Get("Cache-Control"), "immutable") {
				t.Errorf("asset %s: %d %q", m[1], st, h.Get("Cache-Control"))
			}
		}
		if strings.Contains(body, "http://cdn") || strings.Contains(body, "https://cdn") || strings.Contains(body, "<script>") {
			t.Errorf("GET %s loads something from outside the binary or inline", p)
		}
	}
	if st, h, _ := c.do("GET", "/assets/app.js", nil, nil); st != 200 || !strings.Contains(h.Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %q", st, h.Get("Content-Type"))
	}
	if st, _ := c.get("/assets/../server.go"); st == 200 {
		t.Error("assets serve files outside the asset directory")
	}
	if st, _ := c.get("/readyz"); st != 200 {
		t.Errorf("readyz: %d", st)
	}
	_ = http.StatusOK
}
