package widgetd

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamtools/streamtools/ingest"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

// chromiumPath is Debian's chromium unless STREAMTOOLS_CHROMIUM says
// otherwise. .ci/run installs it.
func chromiumPath(t *testing.T) string {
	p := os.Getenv("STREAMTOOLS_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("no Chromium at %s (%v): install Debian's chromium (apt-get install -y chromium) or set STREAMTOOLS_CHROMIUM", p, err)
	}
	return p
}

// artifactsDir is where tests save screenshots: STREAMTOOLS_ARTIFACTS, or a
// temporary directory that outlives the test.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("STREAMTOOLS_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "streamtools-artifacts-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium with a fresh profile and the flags this
// machine's closed network needs, and logs the page's console problems.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		wg.Wait()
	})
	// Start the browser now, with no deadline (a deadline on the first
	// Run would bound the browser's life).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				t.Logf("page console %s: %s", m.Type, m.Text)
			}
		}
	})
	return ctx
}

// pageState is window.streamtoolsWidget, plus what the page shows.
type pageState struct {
	Total      *int64         `json:"total"`
	Connected  bool           `json:"connected"`
	Snapshots  int            `json:"snapshots"`
	Updates    int            `json:"updates"`
	Alerts     int            `json:"alerts"`
	Reconnects int            `json:"reconnects"`
	Shown      string         `json:"shown"`  // the counter's text
	Badge      bool           `json:"badge"`  // the "disconnected" badge is visible
	Fill       string         `json:"fill"`   // the goal bar's width
	Closes     map[string]int `json:"closes"` // websocket closes by code
	Hint       string         `json:"hint"`   // the preview's no-data hint, "" while hidden
}

const stateJS = `(() => {
	const s = window.streamtoolsWidget || {};
	return {total: s.total, connected: !!s.connected, snapshots: s.snapshots|0, updates: s.updates|0,
		alerts: s.alerts|0, reconnects: s.reconnects|0, closes: s.closes || {},
		shown: document.getElementById('count').textContent,
		badge: !document.getElementById('badge').hidden,
		fill: getComputedStyle(document.getElementById('fill')).width,
		hint: document.getElementById('hint').hidden ? '' : document.getElementById('hint').textContent};
})()`

// waitPage polls the page until cond holds.
func waitPage(t *testing.T, ctx context.Context, what string, cond func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var st pageState
	for {
		var err error
		st, err = chromedp.Run(ctx, chromedp.Evaluate[pageState](stateJS))
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the page: %s; last state %+v (err %v)", what, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// docsScreenshot writes docs/widget.png: the widget page in preview mode
// with a count, at its natural size (the #widget element at the default
// font size), over the backdrop that stands for the stream.
func docsScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	time.Sleep(1600 * time.Millisecond) // the resting look, after the alert
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.ID("widget")))
	if err != nil {
		t.Fatalf("taking the docs screenshot: %v", err)
	}
	path := filepath.Join("..", "docs", "widget.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot for the docs: %s", path)
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("taking a screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestBrowserWidget runs the real pipeline (edge -> processors -> widgetd),
// opens the widget in headless Chromium, sends postbacks through the edge
// and sees the counter move (a duplicate visitor does not move it), then
// restarts widgetd on the same port and sees the page reconnect with the
// right total, including an event counted while widgetd was down.
func TestBrowserWidget(t *testing.T) {
	dir := artifactsDir(t)
	b := kafkatest.Start(t, "")
	names := kafkatest.Names(t)
	const partitions = 3
	kafkatest.CreateCoreTopics(t, b.Addr(), names, partitions)
	cl := kafkatest.Client(t, b.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := tenant.PutCustomer(ctx, cl, names, schemas.Customer{
		Code: "default", Name: "Demo brand", TimeZone: "Europe/Paris", AntiCheat: true,
		Products: map[string]schemas.Product{"product": {Code: "product", Title: "Sign-ups", Goal: 5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.PutKey(ctx, cl, names, "test-access-key", "default", "browser test"); err != nil {
		t.Fatal(err)
	}

	// The processors and the edge, as `streamtools dev` runs them.
	pipe, err := processors.New(ctx, processors.Config{Brokers: []string{b.Addr()}, Names: names,
		StateDir: t.TempDir(), Partitions: partitions, MaintainEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	testrun.Start(t, "processors Run", pipe.Run)
	readyCtx, readyCancel := context.WithTimeout(ctx, 60*time.Second)
	defer readyCancel()
	if err := pipe.WaitForReady(readyCtx); err != nil {
		t.Fatalf("processors not ready: %v", err)
	}
	edge, err := ingest.New(ingest.Config{Addr: "127.0.0.1:0", Brokers: []string{b.Addr()}, Names: names,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	testrun.Start(t, "ingest Run", edge.Run)

	sys := &system{t: t, brokers: []string{b.Addr()}, names: names, cl: cl}
	srv, stop := sys.startServer("127.0.0.1:0")
	addr := srv.Addr()

	postback := func(visitorIP string) {
		t.Helper()
		body := fmt.Sprintf(`{"influencer_id":"influ_test","product":"product","event_type":"reg","event_name":"registration",
			"campaign":"Jan2024_special_event","medium":"Influencer","source":" twitch","ip":%q,"country":"FR",
			"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"}`, visitorIP)
		kafkatest.Eventually(t, 20*time.Second, "the edge accepting the postback", func() bool {
			resp, err := http.Post("http://"+edge.Addr()+"/test-access-key", "application/json", strings.NewReader(body))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusAccepted
		})
	}

	bctx := browser(t, 560, 200)
	if _, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (struct{}, error) {
		// A dark backdrop stands for the stream behind the transparent page.
		_, err := cdp.Call(ctx, tg, emulation.SetDefaultBackgroundColorOverride,
			emulation.SetDefaultBackgroundColorOverrideParams{Color: &cdp.RGBA{R: 38, G: 44, B: 58, A: 1}})
		return struct{}{}, err
	}); err != nil {
		t.Fatalf("setting the backdrop: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(560, 200)); err != nil {
		t.Fatalf("sizing the viewport: %v", err)
	}
	widgetURL := "http://" + addr + "/default/product/influ_test?preview=1"
	if err := chromedp.Do(bctx, chromedp.Navigate(widgetURL)); err != nil {
		t.Fatalf("opening %s: %v", widgetURL, err)
	}
	bg, err := chromedp.Run(bctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor + " " + getComputedStyle(document.documentElement).backgroundColor`))
	if err != nil || bg != "rgba(0, 0, 0, 0) rgba(0, 0, 0, 0)" {
		t.Errorf("page background = %q (%v); want transparent for OBS", bg, err)
	}
	// No postback names influ_test yet: the preview says so.
	waitPage(t, bctx, "the first snapshot, with the preview's no-data hint", func(s pageState) bool {
		return s.Snapshots == 1 && s.Connected && s.Shown == "0" && !s.Badge &&
			s.Hint == "No data yet for influencer influ_test: check the spelling; ids are case-sensitive."
	})

	postback("132.244.133.122")
	st := waitPage(t, bctx, "the counter at 1 after a postback", func(s pageState) bool { return s.Shown == "1" })
	if st.Updates < 1 || st.Alerts < 1 || st.Hint != "" {
		t.Errorf("after the postback: %+v; want an update with an alert, and no hint", st)
	}
	screenshot(t, bctx, dir, "widget-alert.png")

	// The same visitor again is a duplicate; a new visitor counts. The
	// influencer's postbacks are processed in order, so once the counter
	// reads 2 the duplicate has been applied too, and did not count.
	postback("132.244.133.122")
	postback("198.51.100.7")
	waitPage(t, bctx, "the counter at 2", func(s pageState) bool { return s.Shown == "2" })
	if code, snap := getJSON(t, "http://"+addr+"/ws/default/product/influ_test", ""); code != 200 || snap["total"] != float64(2) {
		t.Errorf("snapshot after a duplicate = %d %v; want total 2", code, snap)
	}

	// Restart: the page shows the badge (preview only) while widgetd is
	// down, and an event counted meanwhile appears with the new snapshot.
	// widgetd says "going away" (1001) to the page before it stops
	// serving, and stops at once; the page keeps its last total.
	start := time.Now()
	stop()
	t.Logf("widgetd stopped in %v with the page open", time.Since(start))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping widgetd with the page open took %v; want under 2s", took)
	}
	st = waitPage(t, bctx, "the page noticing widgetd went away", func(s pageState) bool { return !s.Connected && s.Badge })
	if st.Closes["1001"] != 1 || st.Shown != "2" {
		t.Errorf("after widgetd stopped: %+v; want one close with 1001 (going away) and the counter still at 2", st)
	}
	postback("203.0.113.9")
	srv2, _ := sys.startServer(addr)
	st = waitPage(t, bctx, "the page reconnected with total 3", func(s pageState) bool {
		return s.Connected && s.Snapshots >= 2 && s.Total != nil && *s.Total == 3 && s.Shown == "3" && !s.Badge
	})
	t.Logf("after the restart: %+v", st)
	if want := "3"; st.Shown != want {
		t.Errorf("counter = %q; want %q", st.Shown, want)
	}
	// One more live event on the new instance, captured mid-alert.
	postback("192.0.2.44")
	waitPage(t, bctx, "the counter at 4 on the new instance", func(s pageState) bool { return s.Shown == "4" })
	time.Sleep(250 * time.Millisecond) // let the alert reach its peak for the picture
	screenshot(t, bctx, dir, "widget-after-restart.png")
	_ = srv2
	if os.Getenv("STREAMTOOLS_SCREENSHOTS") == "1" {
		docsScreenshot(t, bctx)
	}
	postback("192.0.2.45")
	waitPage(t, bctx, "the goal reached", func(s pageState) bool { return s.Shown == "5" })
	time.Sleep(1600 * time.Millisecond) // the alert is over: the resting look
	screenshot(t, bctx, dir, "widget-goal-reached.png")

	// A wrong-case influencer and campaign: the preview hints at the typo,
	// a widget on stream shows its 0 and nothing else.
	for _, tc := range []struct{ query, hint string }{
		{"?preview=1", "No data yet for influencer Influ_Test / campaign jan2024_special_event: check the spelling; ids are case-sensitive."},
		{"", ""},
	} {
		u := "http://" + addr + "/default/product/Influ_Test/jan2024_special_event" + tc.query
		if err := chromedp.Do(bctx, chromedp.Navigate(u)); err != nil {
			t.Fatal(err)
		}
		st := waitPage(t, bctx, "a typo'd widget "+tc.query, func(s pageState) bool { return s.Connected && s.Snapshots == 1 })
		if st.Shown != "0" || st.Hint != tc.hint {
			t.Errorf("%s: %+v; want 0 and the hint %q", u, st, tc.hint)
		}
		if tc.hint != "" {
			screenshot(t, bctx, dir, "widget-no-data.png")
		}
	}

	// A page that is not a widget is readable by a human.
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+addr+"/nobody/product/influ_test")); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil || !bytes.Contains([]byte(text), []byte("unknown customer")) {
		t.Errorf("unknown customer page text = %q (%v)", text, err)
	}
	screenshot(t, bctx, dir, "widget-not-found.png")
}
