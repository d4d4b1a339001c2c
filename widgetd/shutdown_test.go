package widgetd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
)

// warnRecorder is a slog handler that keeps the messages of WARN records
// and above.
type warnRecorder struct {
	mu    sync.Mutex
	warns []string
}

func (h *warnRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *warnRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	h.warns = append(h.warns, b.String())
	h.mu.Unlock()
	return nil
}
func (h *warnRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warnRecorder) WithGroup(string) slog.Handler      { return h }

func (h *warnRecorder) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.warns...)
}

// Shutdown with widgets (and a browser's spare connection) open closes their websockets first, with 1001
// "going away" (the page keeps its total and reconnects at once), then
// stops the HTTP server: it returns quickly and logs no WARN (the HTTP
// server's shutdown used to wait for the websockets, 5 s, before they
// were told to close). Cancelling twice is harmless, and a second Run
// refuses to start.
func TestShutdownClosesWebsocketsFirst(t *testing.T) {
	sys := newSystem(t, "")
	sys.putCustomer(demoCustomer("default"))
	sys.putDay(row("default", "product", "influ_test", "", day1), map[string]int64{"reg": 3}, 0)

	rec := &warnRecorder{}
	srv, err := New(Config{Addr: "127.0.0.1:0", Brokers: sys.brokers, Names: sys.names, Domain: "example.test",
		HeartbeatInterval: 200 * time.Millisecond, Log: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-runErr:
		t.Fatalf("widgetd stopped before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("widgetd not ready after 20s")
	}

	const n = 6
	paths := []string{"/ws/default/product/influ_test", "/ws/default/product/influ_test?goal=10", "/ws/default/product/other"}
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = dialWS(t, srv, paths[i%len(paths)])
		if m := clients[i].next(false); m.Type != "snapshot" {
			t.Fatalf("client %d: first message %+v; want a snapshot", i, m)
		}
	}
	// Each client reads until the server closes and reports the close.
	type closed struct {
		code   int
		reason string
		err    error
	}
	results := make(chan closed, n)
	for _, c := range clients {
		go func(conn *fws.Conn) {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					var ce *fws.CloseError
					if errors.As(err, &ce) {
						results <- closed{code: ce.Code, reason: ce.Text}
					} else {
						results <- closed{err: err}
					}
					return
				}
			}
		}(c.conn)
	}

	// A browser also keeps a spare connection open that has sent nothing
	// yet (a preconnect); the HTTP server's shutdown waited 5 s for such
	// a connection.
	silent, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond) // accepted

	start := time.Now()
	cancel()
	cancel() // a second shutdown request is harmless
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the shutdown")
	}
	took := time.Since(start)
	t.Logf("shutdown with %d widgets and a silent connection open took %v", n, took)
	if took > 2*time.Second {
		t.Errorf("shutdown took %v; want under 2s", took)
	}
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil {
			t.Errorf("a client saw %v; want a close frame", r.err)
		} else if r.code != fws.CloseGoingAway || r.reason != "widgetd restarting" {
			t.Errorf("close = %d %q; want %d %q", r.code, r.reason, fws.CloseGoingAway, "widgetd restarting")
		}
	}
	if w := rec.all(); len(w) > 0 {
		t.Errorf("shutdown logged warnings: %q", w)
	}
	// Shutting down again: a second Run does not serve, and cancelling
	// the finished server's context again is harmless.
	if err := srv.Run(ctx); err == nil {
		t.Error("a second Run returned nil; want an error")
	}
	cancel()
}
