package dashboard_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/streamtools/streamtools/dashboard"
)

// chromiumPath is Debian's chromium; .ci/run installs it.
const chromiumPath = "/usr/bin/chromium"

// artifactsDir is where the browser test saves its screenshots:
// $STREAMTOOLS_ARTIFACTS, else a new temporary directory that outlives
// the test.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("STREAMTOOLS_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "streamtools-artifacts-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium with a fresh profile and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v: install Debian's chromium (apt-get install -y chromium)", chromiumPath, err)
	}
	profile := t.TempDir()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 1000),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	// The first Run starts the browser for the life of its context: give it
	// the test's context, not a step's timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Chromium's children may write to the profile a little after it
		// exits; TempDir's cleanup retries are not enough, so wait here.
		for i := 0; i < 50; i++ {
			if err := os.RemoveAll(profile); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}

// TestBrowserLoginFilterScreenshot logs in with headless Chromium, sees the
// demo data, applies a filter by clicking a campaign, checks the figures,
// opens a widget preview, and saves screenshots as artifacts.
func TestBrowserLoginFilterScreenshot(t *testing.T) {
	pool := testDB(t)
	events := demoEvents("default", 2500)
	insert(t, pool, append(events, demoEvents("other-brand", 100)...))
	mustUser(t, pool, "default", "demo", pw)

	// widgetd has its own browser test; here a stand-in serves a page at
	// the widget URL so that the preview frame shows something.
	widget := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body style="margin:0;background:transparent;font-family:sans-serif">
<div style="margin:24px;padding:18px 22px;border-radius:14px;background:rgba(20,23,51,.85);color:#fff;width:340px">
<div style="font-size:13px;opacity:.8">Sign-ups · %s (widget stand-in)</div><div style="font-size:34px;font-weight:700">62 / 100</div>
<div style="height:10px;background:rgba(255,255,255,.2);border-radius:5px;margin-top:8px"><div style="height:10px;width:62%%;background:#8b8bff;border-radius:5px"></div></div>
</div></body></html>`, html.EscapeString(strings.Split(r.URL.Path, "/")[3]))
	}))
	t.Cleanup(widget.Close)

	srv := serve(t, pool, dashboard.Config{WidgetBaseURL: widget.URL})
	ctx := browser(t)
	// Script errors of any page fail the test.
	var mu sync.Mutex
	var scriptErrors []string
	go func() {
		for ev, err := range chromedp.Events(ctx, runtime.ExceptionThrown) {
			if err != nil {
				if ctx.Err() == nil { // not the end of the test: the listener failed
					mu.Lock()
					scriptErrors = append(scriptErrors, "listening for script errors: "+err.Error())
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			scriptErrors = append(scriptErrors, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
			mu.Unlock()
		}
	}()

	dir := artifactsDir(t)
	t.Logf("screenshots go to %s", dir)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", p)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			shot("failed.png")
			t.Fatalf("%s: %v", what, err)
		}
	}
	// waitCounted waits until the "Counted events" card shows n.
	waitCounted := func(n int64) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(
			`document.querySelector('#k-counted').textContent.replace(/\D/g, '') === '%d'`, n))
	}

	all := sumOf(events, nil)
	step("opening the login page",
		chromedp.Navigate(srv.URL+"/login?login=demo"),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	shot("dashboard-login.png")
	step("logging in",
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("chart")),
	)
	step("seeing the demo data",
		waitCounted(all.counted),
		chromedp.Poll[chromedp.Void](`document.querySelector('section[data-view=influencers]').textContent.includes('influ_test')`),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#chart svg rect.bar-c').length > 10`),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#k-dup-visitor').textContent.replace(/\D/g, '') === '%d'`, all.visitor)),
	)
	shot("dashboard-overview.png")

	camp := sumOf(events, func(e ev) bool { return e.Campaign == "summer_launch" })
	step("filtering on a campaign by clicking it",
		// Clicked from the page: the section re-renders when its data
		// arrives, and a node found before that goes stale.
		chromedp.Poll[chromedp.Void](`(() => { const a = document.querySelector('section[data-view=campaigns] a[title="Filter on summer_launch"]'); if (!a) return false; a.click(); return true })()`),
		waitCounted(camp.counted),
		chromedp.Poll[chromedp.Void](`location.search.includes('campaign=summer_launch') && document.querySelector('#f-campaign').value === 'summer_launch'`),
	)
	fr := sumOf(events, func(e ev) bool { return e.Campaign == "summer_launch" && e.EventType == "ftd" })
	step("filtering on an event type with the select",
		chromedp.SetValue(chromedp.ID("f-event_type"), "ftd"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`document.querySelector('#f-event_type').dispatchEvent(new Event('change'))`)(ctx, tg)
			return err
		}),
		waitCounted(fr.counted),
	)
	shot("dashboard-filtered.png")

	csvHref, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('a[data-export=events]').href`))
	if err != nil || !strings.Contains(csvHref, "/api/v1/export/events.csv?") || !strings.Contains(csvHref, "campaign=summer_launch") {
		t.Errorf("the events CSV link %q (%v) does not carry the filters", csvHref, err)
	}

	step("opening the influencers page with a preview",
		chromedp.Click(chromedp.CSS(`.tabs a[href^="/influencers"]`)),
		chromedp.WaitVisible(chromedp.ID("preview-frame")),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#influencers tbody tr').length > 0`),
		chromedp.Poll[chromedp.Void](`document.querySelector('#preview-frame').src.includes('/summer_launch?preview=1')`),
	)
	src, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#preview-frame').src`))
	if err != nil || !strings.HasPrefix(src, widget.URL+"/default/") {
		t.Errorf("preview frame src %q (%v), want the widget URL on %s", src, err, widget.URL)
	}
	// Give the frame a moment to paint before the screenshot.
	step("letting the preview load", chromedp.Poll[chromedp.Void](`document.querySelector('#preview-frame').contentWindow.length === 0`), chromedp.Sleep(300*time.Millisecond))
	shot("dashboard-influencers.png")

	mu.Lock()
	defer mu.Unlock()
	for _, e := range scriptErrors {
		t.Errorf("script error in a page: %s", e)
	}
}
