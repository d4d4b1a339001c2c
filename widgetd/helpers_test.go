package widgetd

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
)

// system is a broker with the core topics (the stats table among them), a
// tenant with products, and a producer of day rows of the stats table: the
// contract widgetd reads.
type system struct {
	t       testing.TB
	b       *broker.Broker
	dataDir string
	brokers []string
	names   schemas.Names
	cl      *kgo.Client
}

func newSystem(t testing.TB, dataDir string) *system {
	t.Helper()
	b := kafkatest.Start(t, dataDir)
	names := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), names, 3)
	sys := &system{t: t, b: b, dataDir: dataDir, brokers: []string{b.Addr()}, names: names, cl: kafkatest.Client(t, b.Addr())}
	// The core topics include the stats table; ensure it anyway, since it
	// is what widgetd reads (an existing topic is left as it is).
	compact := "compact"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := kafkautil.EnsureTopics(ctx, sys.cl, []kafkautil.TopicSpec{
		{Name: names.StatsTable(), Partitions: 3, Configs: map[string]*string{"cleanup.policy": &compact}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

func (s *system) putCustomer(c schemas.Customer) {
	s.t.Helper()
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if err := tenant.PutCustomer(context.Background(), s.cl, s.names, c); err != nil {
		s.t.Fatal(err)
	}
}

// rowKey names a day row of the stats table.
type rowKey struct {
	customer, product, influencer, campaign, day string
}

func (k rowKey) String() string {
	return schemas.DayKey(k.customer, k.product, k.influencer, k.campaign, k.day)
}

// Days of the tests' rows.
const (
	day1 = "2024-01-15"
	day2 = "2024-01-16"
)

// row returns the key of a day row; campaign "" is a postback without one.
func row(customer, product, influencer, campaign, day string) rowKey {
	return rowKey{customer, product, influencer, campaign, day}
}

// putDay writes a day row as the stats processor would (absolute values,
// updated now); counted maps event types to counted events, and every type
// also gets dups duplicates. It returns the row's updated_at.
func (s *system) putDay(k rowKey, counted map[string]int64, dups int64) time.Time {
	s.t.Helper()
	at := time.Now().UTC()
	s.putDayAt(k, at, counted, dups)
	return at
}

// putDayAt is putDay with an explicit updated_at.
func (s *system) putDayAt(k rowKey, updated time.Time, counted map[string]int64, dups int64) {
	s.t.Helper()
	st := schemas.Stats{V: schemas.StatsVersion, CustomerCode: k.customer, Product: k.product, InfluencerID: k.influencer,
		Campaign: k.campaign, Day: k.day, ByType: map[string]schemas.Counts{}, UpdatedAt: updated,
		Applied: schemas.Watermarks{}}
	for et, n := range counted {
		st.ByType[et] = schemas.Counts{Counted: n, Duplicates: map[string]int64{schemas.ReasonDuplicateVisitor: dups}}
		st.Total += n
	}
	b, err := schemas.StatsCodec.Encode(st)
	if err != nil {
		s.t.Fatal(err)
	}
	s.produce(s.names.StatsTable(), k.String(), b)
}

// deleteDay writes the tombstone of a day row.
func (s *system) deleteDay(k rowKey) {
	s.t.Helper()
	s.produce(s.names.StatsTable(), k.String(), nil)
}

func (s *system) produce(topic, key string, value []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// startServer runs a widgetd on addr until the test ends or stop is
// called, and waits until it is ready.
func (s *system) startServer(addr string, mod ...func(*Config)) (srv *Server, stop func()) {
	s.t.Helper()
	cfg := Config{Addr: addr, Brokers: s.brokers, Names: s.names, Domain: "example.test", HeartbeatInterval: 200 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	run := testrun.Start(s.t, "widgetd Run", srv.Run)
	select {
	case <-srv.Ready():
	case <-run.Exited():
		s.t.Fatalf("widgetd stopped before ready: %v", run.Err())
	case <-time.After(20 * time.Second):
		s.t.Fatal("widgetd not ready after 20s")
	}
	return srv, run.Stop
}

// wsClient reads widget messages, skipping heartbeats unless asked.
type wsClient struct {
	t    testing.TB
	conn *fws.Conn
	srv  *Server // nil: the hub's state is not read
	id   aggID   // what the widget sums, to read the hub's state
	// preview: the URL has preview=1, whose messages may say no_data.
	preview bool
}

func dialWS(t testing.TB, srv *Server, path string) *wsClient {
	t.Helper()
	conn, resp, err := fws.DefaultDialer.Dial("ws://"+srv.Addr()+path, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dialing %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { conn.Close() })
	p, _, _ := strings.Cut(strings.TrimPrefix(path, "/ws"), "?")
	parts, _ := splitPath(p)
	w, _ := widgetFromParts(parts)
	return &wsClient{t: t, conn: conn, srv: srv, id: w.aggID(), preview: strings.Contains(path, "preview=1")}
}

// wireMsg is a message as the page reads it, with the hub's state of the
// widget's rows when it was read (per-type counts and the latest
// updated_at never go on the wire; the tests check the sums through them).
type wireMsg struct {
	Message
	TS int64 `json:"ts"`

	counts  map[string]int64
	updated time.Time
}

// publicKeys are the only fields a widget message may carry: what the page
// shows or needs (see Message).
var publicKeys = map[string]map[string]bool{
	"heartbeat": {"type": true, "ts": true},
	"widget": {"type": true, "customer_code": true, "product": true, "influencer_id": true, "campaign": true,
		"total": true, "title": true, "goal": true, "color": true, "bar_color": true, "bg_color": true,
		"font_size": true, "heartbeat_ms": true},
}

// checkPublic fails on a message field the page does not use (on stream:
// only a preview page may be told no_data).
func checkPublic(t testing.TB, b []byte, preview bool) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	allowed := publicKeys["widget"]
	if string(fields["type"]) == `"heartbeat"` {
		allowed = publicKeys["heartbeat"]
	}
	for k := range fields {
		if !allowed[k] && !(preview && k == "no_data") {
			t.Errorf("the message carries %q, which the page does not show: %s", k, b)
		}
	}
}

// read decodes a message, checks its fields and notes the hub's state.
func (c *wsClient) read(b []byte) wireMsg {
	c.t.Helper()
	checkPublic(c.t, b, c.preview)
	var m wireMsg
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("decoding %s: %v", b, err)
	}
	if c.srv != nil {
		m.counts, m.updated = c.srv.hub.state(c.id)
	}
	return m
}

// state returns the counts by event type and the latest updated_at of the
// rows that id sums.
func (h *hub) state(id aggID) (map[string]int64, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.aggs.totals(id)
	if t == nil {
		return map[string]int64{}, time.Time{}
	}
	counts := maps.Clone(t.counts)
	if counts == nil {
		counts = map[string]int64{}
	}
	return counts, t.updated
}

// until reads messages until one satisfies cond (within 10 s) and returns
// it: for rows produced together, whose updates may be merged.
func (c *wsClient) until(what string, cond func(wireMsg) bool) wireMsg {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last wireMsg
	for time.Now().Before(deadline) {
		_ = c.conn.SetReadDeadline(deadline)
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v (last message %+v)", what, err, last)
		}
		m := c.read(b)
		if m.Type == "heartbeat" {
			continue
		}
		if last = m; cond(m) {
			return m
		}
	}
	c.t.Fatalf("no message with %s within 10s; last %+v", what, last)
	return last
}

func (c *wsClient) next(withHeartbeats bool) wireMsg {
	c.t.Helper()
	// One deadline for the whole wait: heartbeats must not extend it.
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("reading the websocket: %v", err)
		}
		m := c.read(b)
		if m.Type == "heartbeat" && !withHeartbeats {
			continue
		}
		return m
	}
}

// closeCode waits for the server to close the websocket and returns the
// close code.
func (c *wsClient) closeCode() int {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *fws.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.t.Fatalf("reading until close: %v", err)
	}
}

func getJSON(t testing.TB, url string, host string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: decoding JSON: %v", url, err)
	}
	return resp.StatusCode, body
}

func ptr[T any](v T) *T { return &v }
