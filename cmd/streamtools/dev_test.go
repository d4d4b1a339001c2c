package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/streamtools/streamtools/internal/freeport"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
)

// The README's example postback, as a brand would send it.
const exampleBody = `{"influencer_id":"influ_test","product":"product","event_type":"reg","event_name":"registration",
"campaign":"Jan2024_special_event","medium":"Influencer","source":" twitch","ip":"132.244.133.122","country":"FR",
"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"}`

// postgresTempDir is a t.TempDir that dev's Postgres can use: as root,
// dev runs Postgres as the postgres user, who must be able to enter it
// (t.TempDir makes it and its parent 0700).
func postgresTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// devPorts returns a free port for each of dev's listeners: broker,
// ingest, widgetd, dashboard, postgres.
func devPorts(t *testing.T) map[string]int {
	t.Helper()
	ports := map[string]int{}
	for _, name := range []string{"broker", "ingest", "widgetd", "dashboard", "postgres"} {
		ports[name] = freePort(t)
	}
	return ports
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type devProc struct {
	cancel context.CancelFunc
	done   chan error
	out    *testrun.Buffer // what dev prints besides its log: the banner
}

func startDev(t *testing.T, dataDir string, ports map[string]int, extra ...string) *devProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"streamtools", "dev", "--data-dir", dataDir, "--log-level", "warn",
		"--broker-listen", fmt.Sprintf("127.0.0.1:%d", ports["broker"]),
		"--ingest-listen", fmt.Sprintf("127.0.0.1:%d", ports["ingest"]),
		"--widgetd-listen", fmt.Sprintf("127.0.0.1:%d", ports["widgetd"]),
		"--dashboard-listen", fmt.Sprintf("127.0.0.1:%d", ports["dashboard"]),
		"--postgres-port", fmt.Sprint(ports["postgres"]),
	}
	args = append(args, extra...)
	p := &devProc{cancel: cancel, done: make(chan error, 1), out: &testrun.Buffer{}}
	app := newApp()
	app.ErrWriter = p.out
	go func() { p.done <- app.Run(ctx, args) }()
	t.Cleanup(func() { p.stop(t) })
	kafkatest.Eventually(t, 90*time.Second, "the edge to be ready", func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("dev stopped early: %v", err)
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports["ingest"]))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func (p *devProc) stop(t *testing.T) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("dev returned %v on shutdown", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not shut down within 60s")
	}
}

func postback(t *testing.T, port int, body string) string {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/test-access-key", port), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("postback: status %d, body %s; want 202", resp.StatusCode, b)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
		t.Fatalf("202 body %s carries no id (%v)", b, err)
	}
	return out.ID
}

type dailyRow struct{ counted, duplicates int64 }

func dailyStats(t *testing.T, ctx context.Context, db *pgx.Conn) map[string]dailyRow {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT campaign, counted, duplicates FROM daily_stats
		WHERE customer_code='default' AND product='product' AND influencer_id='influ_test' AND event_type='reg'`)
	if err != nil {
		return nil // the sink may not have migrated yet
	}
	out := map[string]dailyRow{}
	for rows.Next() {
		var c string
		var r dailyRow
		if err := rows.Scan(&c, &r.counted, &r.duplicates); err != nil {
			t.Fatal(err)
		}
		out[c] = r
	}
	return out
}

func widgetTotal(t *testing.T, port int, path string) int64 {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws/%s", port, path), nil)
	if err != nil {
		t.Logf("dialing the widget websocket: %v", err)
		return -1 // not up yet: callers poll, or compare with the total they want
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var msg struct {
		Type  string
		Total int64
	}
	if err := c.ReadJSON(&msg); err != nil || msg.Type != "snapshot" {
		t.Fatalf("first widget message: %+v, %v; want a snapshot", msg, err)
	}
	return msg.Total
}

func kcatRecords(t *testing.T, brokerPort int, topic string) []byte {
	t.Helper()
	out, err := exec.Command("kcat", "-b", fmt.Sprintf("127.0.0.1:%d", brokerPort), "-C", "-t", topic,
		"-o", "beginning", "-e", "-q").Output()
	if err != nil {
		t.Fatalf("kcat (installed by .ci/run): %v", err)
	}
	return out
}

// TestDevEndToEndAndRestart runs `streamtools dev` as a user would, sends
// the README's example postback, and follows it to the topic (read with
// kcat), Postgres and the widget; then restarts dev on the same data
// directory and checks that nothing was lost and nothing counted twice.
func TestDevEndToEndAndRestart(t *testing.T) {
	dataDir := postgresTempDir(t)
	ports := devPorts(t)
	dbURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/streamtools?sslmode=disable", ports["postgres"])
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dev := startDev(t, dataDir, ports)
	first := postback(t, ports["ingest"], exampleBody)
	// The same visitor doing the same action again the same day: accepted,
	// recorded, not counted.
	second := postback(t, ports["ingest"], exampleBody)

	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]dailyRow{"Jan2024_special_event": {counted: 1, duplicates: 1}}
	kafkatest.Eventually(t, 60*time.Second, "daily_stats to show 1 counted and 1 duplicate", func() bool {
		got := dailyStats(t, ctx, db)
		return len(got) == 1 && got["Jan2024_special_event"] == want["Jan2024_special_event"]
	})
	var verdicts string
	kafkatest.Eventually(t, 30*time.Second, "both events in Postgres", func() bool {
		err := db.QueryRow(ctx, `SELECT string_agg(verdict||':'||reason, ',' ORDER BY received_at) FROM events WHERE id IN ($1,$2)`,
			first, second).Scan(&verdicts)
		return err == nil && verdicts == "counted:,duplicate:duplicate_visitor"
	})
	if got := widgetTotal(t, ports["widgetd"], "default/product/influ_test"); got != 1 {
		t.Fatalf("widget total = %d, want 1", got)
	}
	recs := kcatRecords(t, ports["broker"], "streamtools.postbacks")
	if !bytes.Contains(recs, []byte(first)) || !bytes.Contains(recs, []byte(second)) {
		t.Fatalf("kcat did not read both accepted records from the postbacks topic:\n%s", recs)
	}
	if bytes.Contains(recs, []byte("132.244.133.122")) {
		t.Fatal("the raw IP is in the postbacks topic")
	}
	db.Close(ctx)

	// Restart on the same data directory.
	dev.stop(t)
	startDev(t, dataDir, ports)
	db, err = pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if recs := kcatRecords(t, ports["broker"], "streamtools.postbacks"); !bytes.Contains(recs, []byte(first)) || !bytes.Contains(recs, []byte(second)) {
		t.Fatal("accepted records are gone after a restart of dev")
	}
	// A new visitor after the restart: counts move by exactly one.
	postback(t, ports["ingest"], strings.Replace(exampleBody, "Chrome/119", "Chrome/120", 1))
	want["Jan2024_special_event"] = dailyRow{counted: 2, duplicates: 1}
	kafkatest.Eventually(t, 90*time.Second, "daily_stats to show 2 counted and 1 duplicate after the restart", func() bool {
		got := dailyStats(t, ctx, db)
		return len(got) == 1 && got["Jan2024_special_event"] == want["Jan2024_special_event"]
	})
	kafkatest.Eventually(t, 30*time.Second, "the widget to show 2", func() bool {
		return widgetTotal(t, ports["widgetd"], "default/product/influ_test") == 2
	})
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("events has %d rows (%v), want 3", n, err)
	}
}

// TestDevWithoutPostgres: on a machine without the PostgreSQL server
// binaries, dev still runs the edge, the processors and the widget, and
// leaves out only what needs Postgres.
func TestDevWithoutPostgres(t *testing.T) {
	ports := devPorts(t)
	dev := startDev(t, t.TempDir(), ports, "--postgres-bin-dir", t.TempDir())
	// The banner says what is off and why; each "see the X line" names a
	// line it has.
	kafkatest.Eventually(t, 10*time.Second, "the banner", func() bool {
		return strings.Contains(dev.out.String(), "is running (Ctrl-C stops it)")
	})
	banner := dev.out.String()
	for _, want := range []string{
		"  postgres   off: no PostgreSQL server binaries found (apt-get install postgresql, or pass --database-url)\n",
		"  sink       off: it needs Postgres (see the postgres line)\n",
		"  dashboard  off: it needs Postgres (see the postgres line)\n",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks the line %q:\n%s", strings.TrimSpace(want), banner)
		}
	}
	for _, m := range regexp.MustCompile(`see the (\w+) line`).FindAllStringSubmatch(banner, -1) {
		if !regexp.MustCompile(`(?m)^  ` + m[1] + ` `).MatchString(banner) {
			t.Errorf("the banner says %q but has no %s line:\n%s", m[0], m[1], banner)
		}
	}
	postback(t, ports["ingest"], exampleBody)
	kafkatest.Eventually(t, 60*time.Second, "the widget to count the postback", func() bool {
		return widgetTotal(t, ports["widgetd"], "default/product/influ_test") == 1
	})
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports["dashboard"]), time.Second); err == nil {
		c.Close()
		t.Fatal("the dashboard listens without a database")
	}
}
