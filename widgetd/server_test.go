package widgetd

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
)

func demoCustomer(code string) schemas.Customer {
	return schemas.Customer{Code: code, TimeZone: "Europe/Paris", AntiCheat: true, Products: map[string]schemas.Product{
		"product": {Code: "product", Title: "Sign-ups", Goal: 100, EventTypes: []string{"reg"}},
		"all":     {Code: "all", Title: "Everything"},
	}}
}

// The snapshot holds the rows written before widgetd started (it rebuilds
// from the changelog), summed over the influencer's days; updates follow
// every counted change, a change of duplicates only sends nothing, and a
// tombstone takes its row's counts out.
func TestSnapshotThenUpdates(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	d1 := row("default", "product", "influ_test", "", day1)
	d2 := row("default", "product", "influ_test", "", day2)
	sys.putDay(d1, map[string]int64{"reg": 1, "dl": 5}, 0)
	sys.putDay(d2, map[string]int64{"reg": 1}, 0)
	sys.putDay(row("default", "product", "other", "", day1), map[string]int64{"reg": 40}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	c := dialWS(t, srv, "/ws/default/product/influ_test")
	m := c.next(false)
	if m.Type != "snapshot" || m.Total != 2 || m.counts["reg"] != 2 || m.counts["dl"] != 5 {
		t.Fatalf("first message = %+v; want a snapshot with total 2 (reg only) and counts reg 2, dl 5", m)
	}
	if m.Title != "Sign-ups" || m.Goal != 100 || m.Influencer != "influ_test" || m.Campaign != nil || m.HeartbeatMS != 200 {
		t.Fatalf("snapshot settings = %+v", m)
	}

	// Only duplicates change: nothing is sent. Then a counted event: the
	// next message is its update.
	sys.putDay(d2, map[string]int64{"reg": 1}, 9)
	sys.putDay(d2, map[string]int64{"reg": 2}, 9)
	m = c.next(false)
	if m.Type != "update" || m.Total != 3 || m.updated.IsZero() {
		t.Fatalf("message = %+v; want an update with total 3", m)
	}

	// Overrides change what the total counts.
	all := dialWS(t, srv, "/ws/default/product/influ_test?types=all&goal=10&title=All")
	if m := all.next(false); m.Total != 8 || m.Goal != 10 || m.Title != "All" {
		t.Fatalf("types=all snapshot = %+v; want total 8, goal 10", m)
	}
	dl := dialWS(t, srv, "/ws/default/product/influ_test?types=dl")
	if m := dl.next(false); m.Total != 5 {
		t.Fatalf("types=dl snapshot total = %d; want 5", m.Total)
	}

	// A deleted row (tombstone) takes its counts out; with no row left the
	// widget shows zero.
	sys.deleteDay(d1)
	if m := c.next(false); m.Type != "update" || m.Total != 2 || !maps.Equal(m.counts, map[string]int64{"reg": 2}) {
		t.Fatalf("after the first tombstone: %+v; want total 2 and only reg", m)
	}
	sys.deleteDay(d2)
	if m := c.next(false); m.Type != "update" || m.Total != 0 || len(m.counts) != 0 || !m.updated.IsZero() {
		t.Fatalf("after a tombstone: %+v; want total 0", m)
	}

	// A plain GET of the websocket URL answers the snapshot.
	code, body := getJSON(t, "http://"+srv.Addr()+"/ws/default/product/other", "")
	if code != 200 || body["type"] != "snapshot" || body["total"] != float64(40) {
		t.Fatalf("GET snapshot = %d %v", code, body)
	}
}

// TestPublicMessage: widget URLs are public, so what widgetd sends carries
// only what the page shows (the total of the widget's event types and its
// settings): never the counts of other event types, the list of counted
// types, nor when the last conversion happened. Over the websocket, the
// plain GET and the page's embedded configuration.
func TestPublicMessage(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default")) // product counts reg only
	k := row("default", "product", "influ_test", "spring", day1)
	sys.putDayAt(k, at(1), map[string]int64{"reg": 2, "ftd_deposit": 7}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")
	secret := []string{"ftd_deposit", "counts", "updated_at", "event_types", `"reg"`, "2024-01-16", "\"7\"", ":7"}
	check := func(what string, b []byte) {
		t.Helper()
		checkPublic(t, b, false)
		for _, s := range secret {
			if strings.Contains(string(b), s) {
				t.Errorf("%s carries %s: %s", what, s, b)
			}
		}
	}

	c := dialWS(t, srv, "/ws/default/product/influ_test/spring")
	read := func() []byte {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `"heartbeat"`) {
				return b
			}
		}
	}
	snap := read()
	check("the snapshot", snap)
	var m Message
	if err := json.Unmarshal(snap, &m); err != nil || m.Type != "snapshot" || m.Total != 2 || m.Title != "Sign-ups" || m.Goal != 100 {
		t.Fatalf("snapshot %s (%v); want total 2 with the title and goal", snap, err)
	}
	sys.putDayAt(k, at(2), map[string]int64{"reg": 3, "ftd_deposit": 7}, 0)
	up := read()
	check("the update", up)
	if err := json.Unmarshal(up, &m); err != nil || m.Type != "update" || m.Total != 3 {
		t.Fatalf("update %s (%v); want total 3", up, err)
	}
	// A change of another event type only is not visible: nothing is sent
	// (the next message is the following reg change).
	sys.putDayAt(k, at(3), map[string]int64{"reg": 3, "ftd_deposit": 8}, 0)
	sys.putDayAt(k, at(4), map[string]int64{"reg": 4, "ftd_deposit": 8}, 0)
	if err := json.Unmarshal(read(), &m); err != nil || m.Total != 4 {
		t.Fatalf("next update %+v (%v); want total 4", m, err)
	}

	resp, err := http.Get("http://" + srv.Addr() + "/ws/default/product/influ_test/spring")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check("the plain GET", b)
	if !strings.Contains(string(b), `"total":4`) {
		t.Errorf("plain GET %s; want total 4", b)
	}

	resp, err = http.Get("http://" + srv.Addr() + "/default/product/influ_test/spring")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cfg := regexp.MustCompile(`(?s)<script[^>]*id="widget-config"[^>]*>(.*?)</script>`).FindSubmatch(page)
	if cfg == nil {
		t.Fatalf("no widget-config in the page:\n%s", page)
	}
	for _, s := range []string{"event_types", "ftd_deposit", "updated_at", "counts"} {
		if strings.Contains(string(cfg[1]), s) {
			t.Errorf("the page's configuration carries %s: %s", s, cfg[1])
		}
	}
}

// at is a fixed updated_at plus minutes, so that tests can tell which
// row's updated_at a widget shows.
func at(minutes int) time.Time {
	return time.Date(2024, 1, 16, 12, 0, 0, 0, time.UTC).Add(time.Duration(minutes) * time.Minute)
}

// checkMsg fails unless m is a typ with the total of these counts (the
// widgets use ?types=all), and the hub holds these counts and this
// updated_at (zero: none) for the widget's rows.
func checkMsg(t *testing.T, what string, m wireMsg, typ string, counts map[string]int64, updated time.Time) {
	t.Helper()
	var total int64
	for _, n := range counts {
		total += n
	}
	if m.Type != typ || !maps.Equal(m.counts, counts) || m.Total != total || !m.updated.Equal(updated) {
		t.Fatalf("%s: %s with total %d (hub: counts %v, updated_at %v); want a %s with total %d (counts %v, updated_at %v)",
			what, m.Type, m.Total, m.counts, m.updated, typ, total, counts, updated)
	}
}

// An influencer's widget sums its day rows over every day and campaign, a
// campaign's widget over that campaign's days; updated_at is the latest of
// the rows'. Rows of other influencers and products never leak in.
func TestSumsOverDaysAndCampaigns(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	spring1 := row("default", "product", "influ_test", "spring", day1)
	spring2 := row("default", "product", "influ_test", "spring", day2)
	launch1 := row("default", "product", "influ_test", "launch", day1)
	none2 := row("default", "product", "influ_test", "", day2)
	sys.putDayAt(spring1, at(1), map[string]int64{"reg": 1, "dl": 2}, 0)
	sys.putDayAt(spring2, at(4), map[string]int64{"reg": 3}, 1)
	sys.putDayAt(launch1, at(2), map[string]int64{"reg": 5}, 0)
	sys.putDayAt(none2, at(3), map[string]int64{"reg": 7, "dl": 1}, 0)
	sys.putDayAt(row("default", "product", "influ_test2", "spring", day1), at(9), map[string]int64{"reg": 100}, 0)
	sys.putDayAt(row("default", "all", "influ_test", "spring", day1), at(9), map[string]int64{"reg": 100}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	infl := dialWS(t, srv, "/ws/default/product/influ_test?types=all")
	checkMsg(t, "influencer snapshot", infl.next(false), "snapshot", map[string]int64{"reg": 16, "dl": 3}, at(4))
	spring := dialWS(t, srv, "/ws/default/product/influ_test/spring?types=all")
	checkMsg(t, "spring snapshot", spring.next(false), "snapshot", map[string]int64{"reg": 4, "dl": 2}, at(4))
	launch := dialWS(t, srv, "/ws/default/product/influ_test/launch?types=all")
	checkMsg(t, "launch snapshot", launch.next(false), "snapshot", map[string]int64{"reg": 5}, at(2))

	// The product's settings count reg only; the plain GET agrees.
	code, body := getJSON(t, "http://"+srv.Addr()+"/ws/default/product/influ_test", "")
	if code != 200 || body["total"] != float64(16) {
		t.Fatalf("GET snapshot = %d %v; want total 16", code, body)
	}

	// A new day of a campaign adds to both sums.
	sys.putDayAt(row("default", "product", "influ_test", "launch", "2024-01-17"), at(5), map[string]int64{"reg": 2}, 0)
	checkMsg(t, "influencer after a new day", infl.next(false), "update", map[string]int64{"reg": 18, "dl": 3}, at(5))
	checkMsg(t, "launch after a new day", launch.next(false), "update", map[string]int64{"reg": 7}, at(5))
}

// A day row carries absolute counts: an update replaces the row's previous
// counts in the sums, it does not add to them, also when widgetd rebuilds
// the sums from the changelog (which holds every version of the row).
func TestRowUpdateReplaces(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	spring1 := row("default", "product", "influ_test", "spring", day1)
	spring2 := row("default", "product", "influ_test", "spring", day2)
	launch1 := row("default", "product", "influ_test", "launch", day1)
	sys.putDayAt(spring1, at(1), map[string]int64{"reg": 1, "dl": 2}, 0)
	sys.putDayAt(spring2, at(2), map[string]int64{"reg": 2}, 0)
	sys.putDayAt(spring2, at(3), map[string]int64{"reg": 3}, 0) // replaces reg 2 before widgetd starts
	sys.putDayAt(launch1, at(3), map[string]int64{"reg": 5}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	infl := dialWS(t, srv, "/ws/default/product/influ_test?types=all")
	checkMsg(t, "influencer snapshot", infl.next(false), "snapshot", map[string]int64{"reg": 9, "dl": 2}, at(3))
	spring := dialWS(t, srv, "/ws/default/product/influ_test/spring?types=all")
	checkMsg(t, "spring snapshot", spring.next(false), "snapshot", map[string]int64{"reg": 4, "dl": 2}, at(3))

	sys.putDayAt(spring2, at(5), map[string]int64{"reg": 4}, 0) // 3 -> 4, not +4
	checkMsg(t, "influencer after an update", infl.next(false), "update", map[string]int64{"reg": 10, "dl": 2}, at(5))
	checkMsg(t, "spring after an update", spring.next(false), "update", map[string]int64{"reg": 5, "dl": 2}, at(5))

	// A new event type in a row, then the same row again (a copy): the
	// copy changes nothing, the next change is counted once.
	sys.putDayAt(spring1, at(6), map[string]int64{"reg": 2, "dl": 2, "click": 1}, 0)
	checkMsg(t, "influencer after a new type", infl.next(false), "update", map[string]int64{"reg": 11, "dl": 2, "click": 1}, at(6))
	sys.putDayAt(spring1, at(6), map[string]int64{"reg": 2, "dl": 2, "click": 1}, 0)
	sys.putDayAt(launch1, at(7), map[string]int64{"reg": 6}, 0)
	checkMsg(t, "influencer after a copy and an update", infl.next(false), "update", map[string]int64{"reg": 12, "dl": 2, "click": 1}, at(7))
	checkMsg(t, "spring", spring.next(false), "update", map[string]int64{"reg": 6, "dl": 2, "click": 1}, at(6))

	// A second instance rebuilds the same sums from every version of the
	// rows.
	srv2, _ := sys.startServer("127.0.0.1:0")
	checkMsg(t, "rebuilt influencer", dialWS(t, srv2, "/ws/default/product/influ_test?types=all").next(false),
		"snapshot", map[string]int64{"reg": 12, "dl": 2, "click": 1}, at(7))
	checkMsg(t, "rebuilt spring", dialWS(t, srv2, "/ws/default/product/influ_test/spring?types=all").next(false),
		"snapshot", map[string]int64{"reg": 6, "dl": 2, "click": 1}, at(6))
}

// A tombstone deletes a day row: its counts leave the sums, and updated_at
// falls back to the latest of the remaining rows; a campaign or influencer
// without rows shows zero and no updated_at.
func TestTombstone(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	spring1 := row("default", "product", "influ_test", "spring", day1)
	spring2 := row("default", "product", "influ_test", "spring", day2)
	launch1 := row("default", "product", "influ_test", "launch", day1)
	sys.putDayAt(spring1, at(1), map[string]int64{"reg": 1}, 0)
	sys.putDayAt(spring2, at(4), map[string]int64{"reg": 3, "dl": 1}, 0)
	sys.putDayAt(launch1, at(2), map[string]int64{"reg": 5}, 0)
	// A row deleted before widgetd starts is not counted.
	gone := row("default", "product", "influ_test", "spring", "2024-01-01")
	sys.putDayAt(gone, at(9), map[string]int64{"reg": 50}, 0)
	sys.deleteDay(gone)
	srv, _ := sys.startServer("127.0.0.1:0")

	infl := dialWS(t, srv, "/ws/default/product/influ_test?types=all")
	checkMsg(t, "influencer snapshot", infl.next(false), "snapshot", map[string]int64{"reg": 9, "dl": 1}, at(4))
	spring := dialWS(t, srv, "/ws/default/product/influ_test/spring?types=all")
	checkMsg(t, "spring snapshot", spring.next(false), "snapshot", map[string]int64{"reg": 4, "dl": 1}, at(4))

	// The tombstone of a row widgetd never held changes nothing; then the
	// row with the latest updated_at goes.
	sys.deleteDay(row("default", "product", "influ_test", "spring", "2023-12-31"))
	sys.deleteDay(spring2)
	checkMsg(t, "influencer without spring2", infl.next(false), "update", map[string]int64{"reg": 6}, at(2))
	checkMsg(t, "spring without spring2", spring.next(false), "update", map[string]int64{"reg": 1}, at(1))

	// The campaign's last row.
	sys.deleteDay(spring1)
	checkMsg(t, "spring without rows", spring.next(false), "update", map[string]int64{}, time.Time{})
	checkMsg(t, "influencer without spring", infl.next(false), "update", map[string]int64{"reg": 5}, at(2))

	// The influencer's last row, then a row again.
	sys.deleteDay(launch1)
	checkMsg(t, "influencer without rows", infl.next(false), "update", map[string]int64{}, time.Time{})
	if code, body := getJSON(t, "http://"+srv.Addr()+"/readyz", ""); code != 200 || body["rows"] != float64(0) {
		t.Fatalf("readyz = %d %v; want 0 rows held", code, body)
	}
	sys.putDayAt(spring1, at(7), map[string]int64{"reg": 2}, 0)
	checkMsg(t, "influencer with a row again", infl.next(false), "update", map[string]int64{"reg": 2}, at(7))
	checkMsg(t, "spring with a row again", spring.next(false), "update", map[string]int64{"reg": 2}, at(7))
}

// The campaign form counts only the campaign's rows while the influencer
// form counts them all; an influencer without any row yet gets a zero
// snapshot and then its first update.
func TestCampaignForm(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	none := row("default", "product", "influ_test", "", day1)
	special := row("default", "product", "influ_test", "Jan2024_special_event", day1)
	other := row("default", "product", "influ_test", "other", day2)
	sys.putDay(none, map[string]int64{"reg": 10}, 0)
	sys.putDay(special, map[string]int64{"reg": 4}, 0)
	sys.putDay(other, map[string]int64{"reg": 6}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	c := dialWS(t, srv, "/ws/default/product/influ_test/Jan2024_special_event")
	if m := c.next(false); m.Total != 4 || m.Campaign == nil || *m.Campaign != "Jan2024_special_event" {
		t.Fatalf("campaign snapshot = %+v; want total 4", m)
	}
	infl := dialWS(t, srv, "/ws/default/product/influ_test")
	if m := infl.next(false); m.Total != 20 || m.Campaign != nil {
		t.Fatalf("influencer snapshot = %+v; want total 20 (every campaign)", m)
	}
	sys.putDay(none, map[string]int64{"reg": 11}, 0)
	sys.putDay(other, map[string]int64{"reg": 7}, 0)
	sys.putDay(special, map[string]int64{"reg": 5}, 0)
	if m := c.next(false); m.Type != "update" || m.Total != 5 {
		t.Fatalf("campaign update = %+v; want total 5 (other rows never reach this widget)", m)
	}
	infl.until("influencer total 23", func(m wireMsg) bool { return m.Total == 23 })

	fresh := dialWS(t, srv, "/ws/default/product/newcomer/launch")
	if m := fresh.next(false); m.Type != "snapshot" || m.Total != 0 {
		t.Fatalf("newcomer snapshot = %+v; want total 0", m)
	}
	sys.putDay(row("default", "product", "newcomer", "launch", day1), map[string]int64{"reg": 1}, 0)
	if m := fresh.next(false); m.Total != 1 {
		t.Fatalf("newcomer update = %+v; want total 1", m)
	}
}

// Ids with spaces, unicode and slashes work in both URL forms, and the host
// form splits a customer code with '-' at the first "-widget-".
func TestURLForms(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("my-brand"))
	infl, camp := "José María", "spring/sale 2024"
	sys.putDay(row("my-brand", "product", infl, "", day1), map[string]int64{"reg": 9}, 0)
	sys.putDay(row("my-brand", "product", infl, camp, day2), map[string]int64{"reg": 3}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")
	base := "http://" + srv.Addr()
	esc := url.PathEscape

	for _, tc := range []struct {
		name, path, host, wantWS string
	}{
		{"path form", "/my-brand/product/" + esc(infl), "", "/ws/my-brand/product/" + esc(infl)},
		{"path form with campaign", "/my-brand/product/" + esc(infl) + "/" + esc(camp) + "/", "", "/ws/my-brand/product/" + esc(infl) + "/" + esc(camp)},
		{"host form", "/" + esc(infl), "product-widget-my-brand.example.test", "/ws/my-brand/product/" + esc(infl)},
		{"host form with campaign", "/" + esc(infl) + "/" + esc(camp), "Product-Widget-My-Brand.example.test:8081", "/ws/my-brand/product/" + esc(infl) + "/" + esc(camp)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fetchPageConfig(t, base+tc.path, tc.host)
			if cfg.WS != tc.wantWS {
				t.Fatalf("page websocket path = %q; want %q", cfg.WS, tc.wantWS)
			}
		})
	}

	c := dialWS(t, srv, "/ws/my-brand/product/"+esc(infl))
	if m := c.next(false); m.Influencer != infl || m.Total != 12 {
		t.Fatalf("snapshot = %+v; want %q with total 12", m, infl)
	}
	c = dialWS(t, srv, "/ws/my-brand/product/"+esc(infl)+"/"+esc(camp))
	if m := c.next(false); *m.Campaign != camp || m.Total != 3 {
		t.Fatalf("campaign snapshot = %+v; want %q with total 3", m, camp)
	}
}

var configRe = regexp.MustCompile(`(?s)<script id="widget-config" type="application/json">(.*?)</script>`)

func fetchPageConfig(t *testing.T, u, host string) pageConfig {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s (host %q) = %d %s", u, host, resp.StatusCode, body)
	}
	m := configRe.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no widget config in the page:\n%s", body)
	}
	var cfg pageConfig
	if err := json.Unmarshal(m[1], &cfg); err != nil {
		t.Fatalf("decoding the page config %s: %v", m[1], err)
	}
	return cfg
}

// Every error has its status: JSON for the API, a page for humans.
func TestErrors(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	srv, _ := sys.startServer("127.0.0.1:0")
	base := "http://" + srv.Addr()

	for _, tc := range []struct {
		path      string
		status    int
		wantField string
	}{
		{"/ws/nobody/product/influ_test", 404, "customer_code"},
		{"/ws/default/nothing/influ_test", 404, "product"},
		{"/ws/default/product", 404, "path"},
		{"/ws/default/product/influ_test?goal=lots", 400, "goal"},
		{"/ws/default/product/influ_test?color=url(x)", 400, "color"},
		{"/ws/default/product/influ_test?font_size=1000", 400, "font_size"},
		{"/ws/default/product/influ_%E2%80%AEtset", 400, "influencer_id"},
		{"/ws/default/product/influ_test/spring%E2%81%A6sale", 400, "campaign"},
		{"/ws/default/pro%C2%85duct/influ_test", 400, "product"},
		{"/ws/def%E2%80%8Fault/product/influ_test", 400, "customer_code"},
		{"/ws/default/product/influ%01test", 400, "influencer_id"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := getJSON(t, base+tc.path, "")
			if code != tc.status || body["field"] != tc.wantField || body["error"] == "" {
				t.Errorf("GET %s = %d %v; want %d with field %q", tc.path, code, body, tc.status, tc.wantField)
			}
			// The websocket handshake gets the same status.
			_, resp, err := fws.DefaultDialer.Dial("ws://"+srv.Addr()+tc.path, nil)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Errorf("websocket %s: err %v, response %v; want status %d", tc.path, err, resp, tc.status)
			}
		})
	}
	for _, tc := range []struct {
		path, host, want string
		status           int
	}{
		{"/nobody/product/influ_test", "", "unknown customer", 404},
		{"/default/nothing/influ_test", "", "has no product", 404},
		{"/influ_test", "", "Not a widget URL", 404},
		{"/", "", "Not a widget URL", 404},
		{"/a/b/c", "product-widget-default.example.test", "Not a widget URL", 404},
		{"/influ_test", "product-widget-nobody.example.test", "unknown customer", 404},
		{"/default/product/influ_test?goal=x", "", "Bad widget parameter: goal", 400},
		{"/default/product/influ_%E2%80%AEtset", "", "Bad widget URL: influencer_id", 400},
		{"/influ_test/spring%E2%81%A9sale", "product-widget-default.example.test", "Bad widget URL: campaign", 400},
	} {
		t.Run("page "+tc.host+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Errorf("GET %s = %d %s; want %d mentioning %q", tc.path, resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
	resp, err := http.Post(base+"/default/product/influ_test", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST = %d; want 405", resp.StatusCode)
	}
}

// A new instance on the same port rebuilds the same state from the
// changelog; the old one says "going away" (1001) to its pages.
func TestRestartRebuildsState(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	srv, stop := sys.startServer("127.0.0.1:0")
	addr := srv.Addr()
	c := dialWS(t, srv, "/ws/default/product/influ_test")
	c.next(false)
	// Twenty updates alternate between two day rows: 19 and 20 last.
	for i := int64(1); i <= 20; i++ {
		d := day1
		if i%2 == 0 {
			d = day2
		}
		sys.putDay(row("default", "product", "influ_test", "", d), map[string]int64{"reg": i}, i)
	}
	kafkatest.Eventually(t, 10*time.Second, "total 39", func() bool { return c.next(false).Total == 39 })
	go stop()
	if code := c.closeCode(); code != fws.CloseGoingAway {
		t.Fatalf("close code = %d; want %d (going away)", code, fws.CloseGoingAway)
	}
	stop()

	srv2, _ := sys.startServer(addr)
	if m := dialWS(t, srv2, "/ws/default/product/influ_test").next(false); m.Type != "snapshot" || m.Total != 39 {
		t.Fatalf("after restart: %+v; want a snapshot with total 39", m)
	}
}

// Heartbeats: a JSON heartbeat and a ping every interval.
func TestHeartbeats(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	srv, _ := sys.startServer("127.0.0.1:0", func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond })
	c := dialWS(t, srv, "/ws/default/product/influ_test")
	pings := make(chan struct{}, 10)
	c.conn.SetPingHandler(func(string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return nil
	})
	if m := c.next(true); m.Type != "snapshot" {
		t.Fatalf("first = %+v; want the snapshot", m)
	}
	if m := c.next(true); m.Type != "heartbeat" || m.TS == 0 {
		t.Fatalf("second = %+v; want a heartbeat with ts", m)
	}
	select {
	case <-pings:
	case <-time.After(5 * time.Second):
		t.Fatal("no ping within 5s")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	srv, _ := sys.startServer("127.0.0.1:0")
	base := "http://" + srv.Addr()
	if code, body := getJSON(t, base+"/healthz", ""); code != 200 || body["status"] != "ok" {
		t.Errorf("healthz = %d %v", code, body)
	}
	if code, body := getJSON(t, base+"/readyz", ""); code != 200 || body["status"] != "ready" {
		t.Errorf("readyz = %d %v", code, body)
	}
	c := dialWS(t, srv, "/ws/default/product/influ_test")
	c.next(false)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"streamtools_widgetd_connections 1", `streamtools_widgetd_messages_sent_total{type="snapshot"} 1`, "streamtools_widgetd_ready 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Brokers: []string{"127.0.0.1:9092"}, Names: schemas.NewNames("x.")}
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, "Brokers"},
		{"bad names", func(c *Config) { c.Names.Generation = 0 }, "Names"},
		{"domain with scheme", func(c *Config) { c.Domain = "https://x.io" }, "Domain"},
		{"tiny heartbeat", func(c *Config) { c.HeartbeatInterval = time.Millisecond }, "HeartbeatInterval"},
		{"negative limit", func(c *Config) { c.MaxConnections = -1 }, "MaxConnections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate = %v; want an error naming %s", err, tc.field)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// TestListenError: an address in use is named, and New closes the Kafka
// clients it made, its own tenant registry's included.
func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := kafkatest.ClientGoroutines()
	_, err = New(Config{Addr: ln.Addr().String(), Brokers: []string{"127.0.0.1:1"}, Names: kafkatest.Names(t)})
	want := "widgetd: listening on " + ln.Addr().String() + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("New on an address in use: %v; want an error starting %q", err, want)
	}
	kafkatest.Eventually(t, 5*time.Second, "the clients New made to be closed", func() bool {
		return kafkatest.ClientGoroutines() <= before
	})
}

// Many websockets at once each get their own influencer: Fiber reuses its
// request buffers, and a websocket outlives the request that opened it.
func TestManyConcurrentWidgets(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	const n = 60
	// Each influencer's total is split over two days.
	for i := range n {
		infl := fmt.Sprintf("influencer-%d", i)
		sys.putDay(row("default", "all", infl, "", day1), map[string]int64{"reg": int64(i / 2)}, 0)
		sys.putDay(row("default", "all", infl, "", day2), map[string]int64{"reg": int64(i - i/2)}, 0)
	}
	srv, _ := sys.startServer("127.0.0.1:0")
	clients := make([]*wsClient, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			conn, _, err := fws.DefaultDialer.Dial(fmt.Sprintf("ws://%s/ws/default/all/influencer-%d", srv.Addr(), i), nil)
			if err != nil {
				t.Errorf("dialing %d: %v", i, err)
				return
			}
			clients[i] = &wsClient{t: t, conn: conn}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, c := range clients {
		defer c.conn.Close()
		if m := c.next(false); m.Influencer != fmt.Sprintf("influencer-%d", i) || m.Total != int64(i) {
			t.Errorf("client %d snapshot: %s with total %d", i, m.Influencer, m.Total)
		}
	}
	for i := range n {
		sys.putDay(row("default", "all", fmt.Sprintf("influencer-%d", i), "", day2), map[string]int64{"reg": int64(1000 + i - i/2)}, 0)
	}
	for i, c := range clients {
		if m := c.next(false); m.Influencer != fmt.Sprintf("influencer-%d", i) || m.Total != int64(1000+i) {
			t.Errorf("client %d update: %s with total %d", i, m.Influencer, m.Total)
		}
	}
}

// TestHead: Fiber's Get routes HEAD too. A HEAD is answered as its GET
// would be, status and headers, without the body; a HEAD with websocket
// upgrade headers gets the plain GET's answer too (a websocket opens on
// GET only). Any other method gets 405 with Allow: GET, HEAD.
func TestHead(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	srv, _ := sys.startServer("127.0.0.1:0")
	const upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, tt := range []struct {
		name, path, headers string
		status              int
		ctype               string
	}{
		{"page", "/default/product/influ_test", "", 200, "text/html"},
		{"error page", "/nobody/product/influ_test", "", 404, "text/html"},
		{"snapshot", "/ws/default/product/influ_test", "", 200, "application/json"},
		{"snapshot with upgrade headers", "/ws/default/product/influ_test", upgrade, 200, "application/json"},
		{"refusal", "/ws/default/product/influ_test?goal=lots", "", 400, "application/json"},
		{"healthz", "/healthz", "", 200, "application/json"},
		{"readyz", "/readyz", "", 200, "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, healthz := testrun.HeadThenHealthz(t, srv.Addr(), fmt.Sprintf("HEAD %s HTTP/1.1\r\nHost: x\r\n%s\r\n", tt.path, tt.headers))
			if resp.StatusCode != tt.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
				t.Errorf("HEAD %s: %d %q; want %d %s", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, tt.ctype)
			}
			if !strings.Contains(healthz, `"ok"`) {
				t.Errorf("the GET /healthz after the HEAD answered %q: the HEAD's answer carried a body", healthz)
			}
		})
	}
	for _, method := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		for _, path := range []string{"/default/product/influ_test", "/ws/default/product/influ_test", "/healthz"} {
			req, _ := http.NewRequest(method, "http://"+srv.Addr()+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405 with Allow: GET, HEAD", method, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
}
