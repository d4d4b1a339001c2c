package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/dashboard"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
	"github.com/streamtools/streamtools/widgetd"
)

// TestBrowserInfluencersAt1280 opens the influencers page at 1280x800, the
// smallest laptop screen brands use, with the real widgetd in the preview:
// the page does not scroll sideways, the filters' Reset and the rows'
// Preview buttons are whole and on one line, and beside the preview the
// page says which event types the widget counts, which is what the
// widget's total holds. With STREAMTOOLS_SCREENSHOTS=1 it writes
// docs/dashboard.png.
func TestBrowserInfluencersAt1280(t *testing.T) {
	pool := testDB(t)
	events := demoEvents("default", 2500)
	insert(t, pool, events)
	mustUser(t, pool, "default", "demo", pw)

	// The customer's widget counts sign-ups and first deposits, not
	// downloads; the stats table holds the same events as Postgres.
	b := kafkatest.Start(t, "")
	names := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), names, 3)
	cl := kafkatest.Client(t, b.Addr())
	ctx := context.Background()
	err := tenant.PutCustomer(ctx, cl, names, schemas.Customer{Code: "default", Name: "Demo brand", TimeZone: "UTC",
		Products: map[string]schemas.Product{
			"product": {Code: "product", Title: "Sign-ups", Goal: 500, EventTypes: []string{"reg", "ftd"}},
			"app":     {Code: "app", Title: "App"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	putStats(t, cl, names, events)
	wd, err := widgetd.New(widgetd.Config{Addr: "127.0.0.1:0", Brokers: []string{b.Addr()}, Names: names,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	testrun.Start(t, "widgetd", wd.Run)
	reg, err := tenant.NewRegistry([]string{b.Addr()}, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	testrun.Start(t, "tenant registry", reg.Run)
	select {
	case <-wd.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("widgetd not ready within 30s")
	}
	<-reg.Ready()

	srv := serve(t, pool, dashboard.Config{WidgetBaseURL: "http://" + wd.Addr(), Products: func(c string) (map[string]schemas.Product, bool) {
		t, ok := reg.Customer(c)
		if !ok {
			return nil, false
		}
		return t.Products, true
	}})
	ctx = browser(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("logging in",
		chromedp.Navigate(srv.URL+"/login?login=demo&next=/influencers%3Fproduct%3Dproduct"),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("preview-frame")),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#influencers tbody tr').length > 0`),
		chromedp.Poll[chromedp.Void](`document.querySelector('#preview-frame').src.includes('/default/product/influ_test?preview=1')`),
	)

	// Beside the preview: what the widget counts, and what it leaves out.
	step("the note beside the preview",
		chromedp.Poll[chromedp.Void](`!document.querySelector('#preview-note').hidden`))
	note, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#preview-note').textContent`))
	if want := "The widget counts reg and ftd, not download."; err != nil || note != want {
		t.Errorf("note beside the preview %q (%v), want %q", note, err, want)
	}
	// And the widget's total is what the note says it counts.
	var want int64
	for _, e := range events {
		if e.Product == "product" && e.Influencer == "influ_test" && e.Verdict == "counted" && (e.EventType == "reg" || e.EventType == "ftd") {
			want++
		}
	}
	kafkatest.Eventually(t, 10*time.Second, fmt.Sprintf("the widget's total to be %d", want), func() bool {
		resp, err := http.Get("http://" + wd.Addr() + "/ws/default/product/influ_test")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var m struct{ Total int64 }
		return json.NewDecoder(resp.Body).Decode(&m) == nil && m.Total == want
	})

	// The layout at 1280 px: nothing sideways, the buttons whole.
	type box struct {
		Name    string
		Visible bool   // inside the viewport and every clipping ancestor
		Lines   int    // lines of its text
		Why     string // what clips it
	}
	const layoutJS = `(() => {
		const out = [];
		const check = (name, el) => {
			if (!el) { out.push({name, visible: false, lines: 0, why: 'missing'}); return; }
			const r = el.getBoundingClientRect();
			let why = '';
			if (r.left < 0 || r.right > window.innerWidth) why = 'outside the viewport (' + r.left + '..' + r.right + ')';
			for (let a = el.parentElement; a && !why; a = a.parentElement) {
				const cs = getComputedStyle(a);
				if (cs.overflowX === 'visible') continue;
				const ar = a.getBoundingClientRect();
				if (r.left < ar.left - 0.5 || r.right > ar.right + 0.5) why = 'clipped by ' + a.tagName + '.' + a.className;
			}
			const range = document.createRange();
			range.selectNodeContents(el);
			const lines = new Set(Array.from(range.getClientRects()).filter(q => q.width > 0).map(q => Math.round(q.top))).size;
			out.push({name, visible: !why, lines, why});
		};
		check('Reset', document.querySelector('#f-reset'));
		// The filter bar is one line: Reset is not pushed onto a second.
		const fields = Array.from(document.querySelectorAll('#filters .field'));
		const rows = new Set(fields.map(f => Math.round(f.getBoundingClientRect().top))).size;
		if (rows !== 1) out.push({name: 'the filter bar', visible: false, lines: rows, why: 'wraps onto ' + rows + ' lines'});
		document.querySelectorAll('#influencers tbody tr').forEach((tr, i) => {
			if (i < 3) check('Preview, row ' + (i + 1), tr.querySelector('td:last-child button'));
		});
		return {boxes: out, scroll: document.documentElement.scrollWidth, width: window.innerWidth};
	})()`
	layout, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Boxes  []box `json:"boxes"`
		Scroll int   `json:"scroll"`
		Width  int   `json:"width"`
	}](layoutJS))
	if err != nil {
		t.Fatal(err)
	}
	if layout.Width != 1280 || layout.Scroll > layout.Width {
		t.Errorf("the page is %d px wide in a %d px window: it scrolls sideways", layout.Scroll, layout.Width)
	}
	if len(layout.Boxes) < 2 {
		t.Fatalf("found %d of the buttons: %+v", len(layout.Boxes), layout.Boxes)
	}
	for _, b := range layout.Boxes {
		if !b.Visible || b.Lines != 1 {
			t.Errorf("%s: %s, %d lines; want it whole and on one line", b.Name, b.Why, b.Lines)
		}
	}

	if os.Getenv("STREAMTOOLS_SCREENSHOTS") == "1" {
		// Let the preview's counter settle before the picture.
		step("letting the preview paint", chromedp.Sleep(1500*time.Millisecond))
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "docs", "dashboard.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot for the docs: %s", path)
	}

	// The overview shares the filter bar, and has wide tables too.
	step("opening the overview", chromedp.Navigate(srv.URL+"/"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#chart svg rect.bar-c').length > 0`))
	overview, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth,
		new Set(Array.from(document.querySelectorAll('#filters .field')).map(f => Math.round(f.getBoundingClientRect().top))).size]`))
	if err != nil || len(overview) != 3 || overview[0] > overview[1] || overview[2] != 1 {
		t.Errorf("overview at 1280 px: [page width, window width, filter lines] = %v (%v); want no sideways scroll and one line of filters", overview, err)
	}
}

// putStats writes the stats table rows of events, as the processors would
// (absolute counts per customer/product/influencer/campaign/day).
func putStats(t *testing.T, cl *kgo.Client, names schemas.Names, events []ev) {
	t.Helper()
	rows := map[string]*schemas.Stats{}
	for _, e := range events {
		day := e.Day.Format("2006-01-02")
		k := schemas.DayKey(e.Customer, e.Product, e.Influencer, e.Campaign, day)
		st := rows[k]
		if st == nil {
			st = &schemas.Stats{V: schemas.StatsVersion, CustomerCode: e.Customer, Product: e.Product, InfluencerID: e.Influencer,
				Campaign: e.Campaign, Day: day, ByType: map[string]schemas.Counts{}, Applied: schemas.Watermarks{}, UpdatedAt: time.Now().UTC()}
			rows[k] = st
		}
		c := st.ByType[e.EventType]
		if c.Duplicates == nil {
			c.Duplicates = map[string]int64{}
		}
		if e.Verdict == "counted" {
			c.Counted++
			st.Total++
		} else {
			c.Duplicates[e.Reason]++
		}
		st.ByType[e.EventType] = c
	}
	var recs []*kgo.Record
	for k, st := range rows {
		v, err := schemas.StatsCodec.Encode(*st)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: names.StatsTable(), Key: []byte(k), Value: v})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
