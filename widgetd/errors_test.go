package widgetd

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	fws "github.com/fasthttp/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/internal/testrun"
)

// TestErrorTable walks statusTable: for each kind of refusal it sends a
// websocket URL widgetd refuses that way and checks the answer the table
// promises (status, Retry-After, the JSON {"error", "field"}, the counted
// reason), then the same mistake on the widget page (status, the card's
// title, the reload). A row without a request fails.
func TestErrorTable(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	srv, _ := sys.startServer("127.0.0.1:0", func(c *Config) { c.MaxConnections = 1 })

	// A widgetd whose customers are not read yet: its registry never runs.
	reg, err := tenant.NewRegistry(sys.brokers, sys.names, nil)
	if err != nil {
		t.Fatal(err)
	}
	starting, err := New(Config{Addr: "127.0.0.1:0", Brokers: sys.brokers, Names: sys.names, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	testrun.Start(t, "widgetd Run", starting.Run)

	type request struct {
		srv    *Server
		method string
		path   string // without /ws for the page
	}
	cases := map[error]struct {
		ws, page request // page.path "": the mistake has no page form
		field    string
		title    string // of the page's card
	}{
		errBadPath:  {request{srv, "GET", "/ws/default/product"}, request{srv, "GET", "/influ_test"}, "path", "Not a widget URL"},
		errBadID:    {request{srv, "GET", "/ws/default/product/influ_%E2%80%AEtset"}, request{srv, "GET", "/default/product/influ_%E2%80%AEtset"}, "influencer_id", "Bad widget URL: influencer_id"},
		errBadParam: {request{srv, "GET", "/ws/default/product/influ_test?goal=lots"}, request{srv, "GET", "/default/product/influ_test?goal=lots"}, "goal", "Bad widget parameter: goal"},
		errUnknown:  {request{srv, "GET", "/ws/nobody/product/influ_test"}, request{srv, "GET", "/nobody/product/influ_test"}, "customer_code", "Widget not found"},
		errNotReady: {request{starting, "GET", "/ws/default/product/influ_test"}, request{starting, "GET", "/default/product/influ_test"}, "", "Starting"},
		errFull:     {request{srv, "UPGRADE", "/ws/default/product/influ_test"}, request{}, "", ""},
		errMethod:   {request{srv, "POST", "/ws/default/product/influ_test"}, request{}, "", ""},
	}
	for _, row := range statusTable {
		t.Run(fmt.Sprintf("%d %v", row.status, row.kind), func(t *testing.T) {
			c, ok := cases[row.kind]
			if !ok {
				t.Fatalf("no request in the test answers %v: add one", row.kind)
			}
			before := 0.0
			if row.reason != "" {
				before = rejected(t, c.ws.srv, row.reason)
			}
			var resp *http.Response
			var body []byte
			if c.ws.method == "UPGRADE" {
				// The one connection the limit allows, then one more.
				first := dialWS(t, c.ws.srv, c.ws.path)
				first.next(false)
				_, resp, err = fws.DefaultDialer.Dial("ws://"+c.ws.srv.Addr()+c.ws.path, nil)
				if err == nil || resp == nil {
					t.Fatalf("a websocket beyond the limit: err %v, response %v", err, resp)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			} else {
				resp, body = send(t, c.ws.method, "http://"+c.ws.srv.Addr()+c.ws.path)
			}
			if resp.StatusCode != row.status {
				t.Fatalf("%s %s: %d %s, want %d", c.ws.method, c.ws.path, resp.StatusCode, body, row.status)
			}
			if got, want := resp.Header.Get("Retry-After"), retryAfter(row.retryAfter); got != want {
				t.Errorf("Retry-After %q, want %q", got, want)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("body %q (%s) is not JSON: %v", body, resp.Header.Get("Content-Type"), err)
			}
			msg, _ := m["error"].(string)
			field, _ := m["field"].(string)
			delete(m, "error")
			delete(m, "field")
			if len(m) > 0 || msg == "" || field != c.field {
				t.Errorf("body %s: want {\"error\": a message, \"field\": %q} and nothing else", body, c.field)
			}
			if row.reason != "" {
				if after := rejected(t, c.ws.srv, row.reason); after != before+1 {
					t.Errorf("rejected{reason=%q} went from %v to %v, want one more", row.reason, before, after)
				}
			}

			if c.page.path == "" {
				return
			}
			resp, body = send(t, "GET", "http://"+c.page.srv.Addr()+c.page.path)
			page := string(body)
			switch {
			case resp.StatusCode != row.status:
				t.Errorf("page %s: %d, want %d", c.page.path, resp.StatusCode, row.status)
			case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"):
				t.Errorf("page %s: Content-Type %q, want HTML", c.page.path, resp.Header.Get("Content-Type"))
			case !strings.Contains(page, "<h1>"+c.title+" <small>("+strconv.Itoa(row.status)+")</small></h1>"):
				t.Errorf("page %s does not title its card %q:\n%s", c.page.path, c.title, page)
			case resp.Header.Get("Retry-After") != retryAfter(row.retryAfter):
				t.Errorf("page %s: Retry-After %q, want %q", c.page.path, resp.Header.Get("Retry-After"), retryAfter(row.retryAfter))
			}
			refresh := `<meta http-equiv="refresh" content="` + strconv.Itoa(row.refresh) + `">`
			if row.refresh > 0 != strings.Contains(page, refresh) || row.refresh > 0 && !strings.Contains(page, "checks again every") {
				t.Errorf("page %s: the table says it reloads every %d s:\n%s", c.page.path, row.refresh, page)
			}
		})
	}
}

func retryAfter(seconds int) string {
	if seconds == 0 {
		return ""
	}
	return strconv.Itoa(seconds)
}

func send(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// rejected reads streamtools_widgetd_connections_rejected_total{reason}.
func rejected(t *testing.T, srv *Server, reason string) float64 {
	t.Helper()
	var m dto.Metric
	if err := srv.metrics.rejected.WithLabelValues(reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
