package widgetd

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/schemas"
)

func demoCustomer(code string) schemas.Customer {
	return schemas.Customer{Code: code, TimeZone: "Europe/Paris", AntiCheat: true, Products: map[string]schemas.Product{
		"product": {Code: "product", Title: "Sign-ups", Goal: 100, EventTypes: []string{"reg"}},
		"all":     {Code: "all", Title: "Everything"},
	}}
}

// The snapshot holds the rows written before widgetd started (it rebuilds
// from the changelog), updates follow every counted change, and a change
// of duplicates only sends nothing.
func TestSnapshotThenUpdates(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	sys.putStats("default", "product", "influ_test", nil, map[string]int64{"reg": 2, "dl": 5}, 0)
	sys.putStats("default", "product", "other", nil, map[string]int64{"reg": 40}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	c := dialWS(t, srv, "/ws/default/product/influ_test")
	m := c.next(false)
	if m.Type != "snapshot" || m.Total != 2 || m.Counts["reg"] != 2 || m.Counts["dl"] != 5 {
		t.Fatalf("first message = %+v; want a snapshot with total 2 (reg only) and counts reg 2, dl 5", m)
	}
	if m.Title != "Sign-ups" || m.Goal != 100 || m.Influencer != "influ_test" || m.Campaign != nil || m.HeartbeatMS != 200 {
		t.Fatalf("snapshot settings = %+v", m)
	}

	// Only duplicates change: nothing is sent. Then a counted event: the
	// next message is its update.
	sys.putStats("default", "product", "influ_test", nil, map[string]int64{"reg": 2, "dl": 5}, 9)
	sys.putStats("default", "product", "influ_test", nil, map[string]int64{"reg": 3, "dl": 5}, 9)
	m = c.next(false)
	if m.Type != "update" || m.Total != 3 || m.UpdatedAt == nil {
		t.Fatalf("message = %+v; want an update with total 3", m)
	}

	// Overrides change what the total counts.
	all := dialWS(t, srv, "/ws/default/product/influ_test?types=all&goal=10&title=All")
	if m := all.next(false); m.Total != 8 || m.Goal != 10 || m.Title != "All" || len(m.EventTypes) != 0 {
		t.Fatalf("types=all snapshot = %+v; want total 8, goal 10", m)
	}
	dl := dialWS(t, srv, "/ws/default/product/influ_test?types=dl")
	if m := dl.next(false); m.Total != 5 {
		t.Fatalf("types=dl snapshot total = %d; want 5", m.Total)
	}

	// A deleted row (tombstone) shows zero.
	sys.produce(sys.inflTopic(), schemas.InfluencerKey("default", "product", "influ_test"), nil)
	if m := c.next(false); m.Type != "update" || m.Total != 0 || len(m.Counts) != 0 {
		t.Fatalf("after a tombstone: %+v; want total 0", m)
	}

	// A plain GET of the websocket URL answers the snapshot.
	code, body := getJSON(t, "http://"+srv.Addr()+"/ws/default/product/other", "")
	if code != 200 || body["type"] != "snapshot" || body["total"] != float64(40) {
		t.Fatalf("GET snapshot = %d %v", code, body)
	}
}

// The campaign form counts only the campaign's row; an influencer without
// any row yet gets a zero snapshot and then its first update.
func TestCampaignForm(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	sys.putStats("default", "product", "influ_test", nil, map[string]int64{"reg": 10}, 0)
	sys.putStats("default", "product", "influ_test", ptr("Jan2024_special_event"), map[string]int64{"reg": 4}, 0)
	sys.putStats("default", "product", "influ_test", ptr("other"), map[string]int64{"reg": 6}, 0)
	srv, _ := sys.startServer("127.0.0.1:0")

	c := dialWS(t, srv, "/ws/default/product/influ_test/Jan2024_special_event")
	if m := c.next(false); m.Total != 4 || m.Campaign == nil || *m.Campaign != "Jan2024_special_event" {
		t.Fatalf("campaign snapshot = %+v; want total 4", m)
	}
	sys.putStats("default", "product", "influ_test", nil, map[string]int64{"reg": 11}, 0)
	sys.putStats("default", "product", "influ_test", ptr("other"), map[string]int64{"reg": 7}, 0)
	sys.putStats("default", "product", "influ_test", ptr("Jan2024_special_event"), map[string]int64{"reg": 5}, 0)
	if m := c.next(false); m.Type != "update" || m.Total != 5 {
		t.Fatalf("campaign update = %+v; want total 5 (other rows never reach this widget)", m)
	}

	fresh := dialWS(t, srv, "/ws/default/product/newcomer/launch")
	if m := fresh.next(false); m.Type != "snapshot" || m.Total != 0 {
		t.Fatalf("newcomer snapshot = %+v; want total 0", m)
	}
	sys.putStats("default", "product", "newcomer", ptr("launch"), map[string]int64{"reg": 1}, 0)
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
	sys.putStats("my-brand", "product", infl, nil, map[string]int64{"reg": 12}, 0)
	sys.putStats("my-brand", "product", infl, &camp, map[string]int64{"reg": 3}, 0)
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
	for i := int64(1); i <= 20; i++ {
		sys.putStats("default", "product", "influ_test", nil, map[string]int64{"reg": i}, i)
	}
	kafkatest.Eventually(t, 10*time.Second, "total 20", func() bool { return c.next(false).Total == 20 })
	go stop()
	if code := c.closeCode(); code != fws.CloseGoingAway {
		t.Fatalf("close code = %d; want %d (going away)", code, fws.CloseGoingAway)
	}
	stop()

	srv2, _ := sys.startServer(addr)
	if m := dialWS(t, srv2, "/ws/default/product/influ_test").next(false); m.Type != "snapshot" || m.Total != 20 {
		t.Fatalf("after restart: %+v; want a snapshot with total 20", m)
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

// Many websockets at once each get their own influencer: Fiber reuses its
// request buffers, and a websocket outlives the request that opened it.
func TestManyConcurrentWidgets(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	const n = 60
	for i := range n {
		sys.putStats("default", "all", fmt.Sprintf("influencer-%d", i), nil, map[string]int64{"reg": int64(i)}, 0)
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
		sys.putStats("default", "all", fmt.Sprintf("influencer-%d", i), nil, map[string]int64{"reg": int64(1000 + i)}, 0)
	}
	for i, c := range clients {
		if m := c.next(false); m.Influencer != fmt.Sprintf("influencer-%d", i) || m.Total != int64(1000+i) {
			t.Errorf("client %d update: %s with total %d", i, m.Influencer, m.Total)
		}
	}
}
