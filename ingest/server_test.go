package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
)

const (
	testKey     = "test-access-key"
	revokedKey  = "revoked-access-key"
	slowKey     = "slow-access-key" // customer "slow" with RateLimit 1
	anyProdKey  = "anyproduct-key"  // customer "open" without products
	testIP      = "132.244.133.122"
	testUA      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"
	testPartits = 6
)

type edge struct {
	*Server
	url    string
	b      *broker.Broker
	names  schemas.Names
	cancel context.CancelFunc
	done   chan error
}

// startEdge starts a broker, seeds customers and keys, and runs an edge on
// a random port until the test ends.
func startEdge(t *testing.T, edit func(*Config)) *edge {
	t.Helper()
	return startEdgeOn(t, kafkatest.Start(t, ""), edit)
}

// startEdgeOn is startEdge on a broker the test started (with a data
// directory, to restart it).
func startEdgeOn(t *testing.T, b *broker.Broker, edit func(*Config)) *edge {
	t.Helper()
	names := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), names, testPartits)
	cl := kafkatest.Client(t, b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tenant.PutCustomer(ctx, cl, names, schemas.Customer{
		Code: "default", TimeZone: "Europe/Paris", AntiCheat: true,
		Products: map[string]schemas.Product{"product": {Code: "product"}, "other": {Code: "other"}},
	}))
	must(tenant.PutCustomer(ctx, cl, names, schemas.Customer{Code: "slow", TimeZone: "UTC", RateLimit: 1}))
	must(tenant.PutCustomer(ctx, cl, names, schemas.Customer{Code: "open", TimeZone: "America/New_York"}))
	_, err := tenant.PutKey(ctx, cl, names, testKey, "default", "test")
	must(err)
	rk, err := tenant.PutKey(ctx, cl, names, revokedKey, "default", "revoked")
	must(err)
	must(tenant.RevokeKey(ctx, cl, names, rk))
	_, err = tenant.PutKey(ctx, cl, names, slowKey, "slow", "slow")
	must(err)
	_, err = tenant.PutKey(ctx, cl, names, anyProdKey, "open", "open")
	must(err)

	cfg := Config{
		Addr: "127.0.0.1:0", Brokers: []string{b.Addr()}, Names: names,
		Registerer: prometheus.NewRegistry(), ProduceTimeout: 2 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	must(err)
	rctx, rcancel := context.WithCancel(context.Background())
	e := &edge{Server: s, url: "http://" + s.Addr(), b: b, names: names, cancel: rcancel, done: make(chan error, 1)}
	go func() { e.done <- s.Run(rctx) }()
	t.Cleanup(func() {
		rcancel()
		if err := <-e.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	kafkatest.Eventually(t, 20*time.Second, "the edge to be ready", func() bool {
		resp, err := http.Get(e.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return e
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.code, a.body)
	}
	return m
}

func do(t *testing.T, method, u, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestStatuses sends one request per case and checks the status and the
// field named by the error body.
func TestStatuses(t *testing.T) {
	e := startEdge(t, nil)
	form := url.Values{"influencer_id": {"influ_form"}, "product": {"product"}, "country": {"de"}}.Encode()
	big := []byte(`{"influencer_id":"a","product":"product","campaign":"` + strings.Repeat("x", 17<<10) + `"}`)
	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		field                           string
	}{
		{"example JSON", "POST", "/" + testKey, "application/json", exampleBody, 202, ""},
		{"JSON as text/plain", "POST", "/" + testKey, "text/plain", exampleBody, 202, ""},
		{"JSON as a form (curl -d)", "POST", "/" + testKey, "application/x-www-form-urlencoded", exampleBody, 202, ""},
		{"JSON without Content-Type", "POST", "/" + testKey, "", exampleBody, 202, ""},
		{"form", "POST", "/" + testKey, "application/x-www-form-urlencoded", form, 202, ""},
		{"GET with URL macros", "GET", "/" + testKey + "?influencer_id=influ_get&product=product&event_type=sale&ip=10.1.2.3&user_agent=UA", "", "", 202, ""},
		{"unknown product", "POST", "/" + testKey, "", `{"influencer_id":"a","product":"nope"}`, 400, "product"},
		{"any product when the customer lists none", "POST", "/" + anyProdKey, "", `{"influencer_id":"a","product":"anything"}`, 202, ""},
		{"missing influencer_id", "POST", "/" + testKey, "", `{"product":"product"}`, 400, "influencer_id"},
		{"missing product (GET)", "GET", "/" + testKey + "?influencer_id=a", "", "", 400, "product"},
		{"bad country (form)", "POST", "/" + testKey, "application/x-www-form-urlencoded", "influencer_id=a&product=product&country=France", 400, "country"},
		{"bad ip", "POST", "/" + testKey, "", `{"influencer_id":"a","product":"product","ip":"1.2.3"}`, 400, "ip"},
		{"invalid UTF-8 (GET)", "GET", "/" + testKey + "?influencer_id=%ff%fe&product=product", "", "", 400, "influencer_id"},
		{"bidi override (GET)", "GET", "/" + testKey + "?influencer_id=influ_%E2%80%AEtset&product=product", "", "", 400, "influencer_id"},
		{"bidi isolate (JSON)", "POST", "/" + testKey, "", `{"influencer_id":"a","product":"product","campaign":"x\u2066y"}`, 400, "campaign"},
		{"C1 control (form)", "POST", "/" + testKey, "application/x-www-form-urlencoded", "influencer_id=a&product=product&event_type=re%C2%85g", 400, "event_type"},
		{"unfilled macro (GET, URL-encoded)", "GET", "/" + testKey + "?influencer_id=a&product=product&event_id=%7Btransaction_id%7D", "", "", 400, "event_id"},
		{"unfilled macro (form)", "POST", "/" + testKey, "application/x-www-form-urlencoded", "influencer_id=%5Bclickid%5D&product=product", 400, "influencer_id"},
		{"unfilled macro (JSON)", "POST", "/" + testKey, "", `{"influencer_id":"a","product":"product","source":"${source}"}`, 400, "source"},
		{"too long", "POST", "/" + testKey, "", `{"influencer_id":"` + strings.Repeat("i", 129) + `","product":"product"}`, 400, "influencer_id"},
		{"not JSON", "POST", "/" + testKey, "", `influencer_id: a`, 400, "body"},
		{"number", "POST", "/" + testKey, "", `{"influencer_id":5,"product":"product"}`, 400, "influencer_id"},
		{"multipart", "POST", "/" + testKey, "multipart/form-data; boundary=x", "--x--", 415, "content-type"},
		{"JSON labelled multipart", "POST", "/" + testKey, "multipart/form-data; boundary=x", exampleBody, 415, "content-type"},
		{"form labelled text/plain is read as JSON", "POST", "/" + testKey, "text/plain", form, 400, "body"},
		{"unknown key", "POST", "/unknown-access-key", "", exampleBody, 401, "access_key"},
		{"revoked key", "POST", "/" + revokedKey, "", exampleBody, 401, "access_key"},
		{"body over the single limit", "POST", "/" + testKey, "", string(big), 413, "body"},
		{"no such endpoint", "POST", "/" + testKey + "/x/y", "", exampleBody, 404, ""},
		{"method", "PUT", "/" + testKey, "", exampleBody, 405, ""},
		{"method on batch", "GET", "/" + testKey + "/batch", "", "", 405, ""},
		{"JSON array to the single endpoint", "POST", "/" + testKey, "application/json", "[" + exampleBody + "]", 400, "body"},
		{"JSON array as a form (curl -d)", "POST", "/" + testKey, "application/x-www-form-urlencoded", " [" + exampleBody + "]", 400, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, e.url+tt.path, tt.ctype, []byte(tt.body))
			if a.code != tt.code {
				t.Fatalf("status %d (%s), want %d", a.code, a.body, tt.code)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			m := a.json(t)
			if tt.code == 202 {
				if id, _ := m["id"].(string); !uuidV7.MatchString(id) {
					t.Errorf("202 body %s has no UUIDv7 id", a.body)
				}
				return
			}
			if msg, _ := m["error"].(string); msg == "" {
				t.Errorf("error body %s has no error message", a.body)
			}
			if f, _ := m["field"].(string); f != tt.field {
				t.Errorf("field %q, want %q (body %s)", f, tt.field, a.body)
			}
		})
	}
	// The edge answers 413 from the Content-Length, before the body: send
	// the headers alone and read the answer, as a client whose write is cut
	// short would. Each endpoint quotes its own limit.
	for _, tt := range []struct{ name, path, limit, not string }{
		{"body over the batch limit", "/" + testKey + "/batch", "1048576", "16384"},
		{"single body over the batch limit quotes the single limit", "/" + testKey, "16384", "1048576"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n[", tt.path, 2<<20)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 413 || !strings.Contains(string(b), `"field":"body"`) {
				t.Fatalf("status %d %s, want 413 on body", resp.StatusCode, b)
			}
			if !strings.Contains(string(b), tt.limit) || strings.Contains(string(b), tt.not) {
				t.Errorf("413 body %s does not quote the limit %s of %s alone", b, tt.limit, tt.path)
			}
		})
	}
	t.Run("405 lists the allowed methods", func(t *testing.T) {
		for _, tt := range []struct{ method, path, allow, fix string }{
			{"PUT", "/" + testKey, "GET, POST", "POST /{access_key}"},
			{"DELETE", "/" + testKey + "/", "GET, POST", "GET /{access_key}?"},
			{"GET", "/" + testKey + "/batch", "POST", "POST /{access_key}/batch"},
			{"DELETE", "/healthz", "GET, HEAD", "GET /healthz"},
		} {
			a := do(t, tt.method, e.url+tt.path, "", nil)
			if a.code != 405 || a.header.Get("Allow") != tt.allow {
				t.Errorf("%s %s: %d, Allow %q, want 405 with Allow %q", tt.method, tt.path, a.code, a.header.Get("Allow"), tt.allow)
			}
			msg, _ := a.json(t)["error"].(string)
			if !strings.Contains(msg, tt.fix) || strings.Contains(msg, testKey) {
				t.Errorf("%s %s: message %q names no fix %q, or echoes the key", tt.method, tt.path, msg, tt.fix)
			}
		}
		if a := do(t, "PUT", e.url+"/"+testKey+"/x/batch", "", nil); a.code != 404 || a.header.Get("Allow") != "" {
			t.Errorf("PUT of an unknown path: %d, Allow %q, want 404 without Allow", a.code, a.header.Get("Allow"))
		}
	})
	t.Run("a JSON array names the batch endpoint", func(t *testing.T) {
		a := do(t, "POST", e.url+"/"+testKey, "", []byte("["+exampleBody+"]"))
		if msg, _ := a.json(t)["error"].(string); !strings.Contains(msg, "/{access_key}/batch") {
			t.Errorf("message %q does not name /{access_key}/batch", msg)
		}
	})
	t.Run("unknown product lists the known ones", func(t *testing.T) {
		a := do(t, "POST", e.url+"/"+testKey, "", []byte(`{"influencer_id":"a","product":"nope"}`))
		if !strings.Contains(string(a.body), "other, product") {
			t.Errorf("body %s does not list the products", a.body)
		}
	})
	t.Run("unknown and revoked keys answer the same bytes", func(t *testing.T) {
		// Interleaved, so that both see the same machine; the medians are
		// logged, not asserted (timings on a shared machine are noise; the
		// code path is the same, see authCache).
		const rounds = 200
		var unknown, revoked []time.Duration
		for i := range rounds {
			start := time.Now()
			a := do(t, "POST", e.url+"/unknown-access-key", "", []byte(exampleBody))
			unknown = append(unknown, time.Since(start))
			start = time.Now()
			b := do(t, "POST", e.url+"/"+revokedKey, "", []byte(exampleBody))
			revoked = append(revoked, time.Since(start))
			delete(a.header, "Date")
			delete(b.header, "Date")
			if a.code != 401 || a.code != b.code || !bytes.Equal(a.body, b.body) || fmt.Sprint(a.header) != fmt.Sprint(b.header) {
				t.Fatalf("round %d:\nunknown key: %d %q %v\nrevoked key: %d %q %v", i, a.code, a.body, a.header, b.code, b.body, b.header)
			}
		}
		t.Logf("median latency over %d requests each: unknown key %v, revoked key %v", rounds, median(unknown), median(revoked))
	})
	t.Run("over the rate limit", func(t *testing.T) {
		// Customer "slow" allows 1 postback/s, with a burst of 1: a batch
		// of 2 can never pass (400, not 429: retrying would not help), a
		// batch of 1 takes the token, and the next postback gets 429.
		two := strings.Repeat(`{"influencer_id":"a","product":"p"}`+"\n", 2)
		a := do(t, "POST", e.url+"/"+slowKey+"/batch", "application/x-ndjson", []byte(two))
		if m := a.json(t); a.code != 400 || m["field"] != "body" || !strings.Contains(m["error"].(string), "at most 1 at once") {
			t.Fatalf("batch over the burst: %d %s, want 400 on body saying at most 1", a.code, a.body)
		}
		if a := do(t, "POST", e.url+"/"+slowKey+"/batch", "application/x-ndjson", []byte(`{"influencer_id":"a","product":"p"}`)); a.code != 202 {
			t.Fatalf("batch of one: %d %s", a.code, a.body)
		}
		a = do(t, "POST", e.url+"/"+slowKey, "", []byte(`{"influencer_id":"a","product":"p"}`))
		if a.code != 429 || a.header.Get("Retry-After") == "" {
			t.Fatalf("status %d Retry-After %q, want 429 with Retry-After", a.code, a.header.Get("Retry-After"))
		}
		if f := a.json(t)["field"]; f != "access_key" {
			t.Errorf("field %v, want access_key", f)
		}
	})
}

func TestBatch(t *testing.T) {
	e := startEdge(t, nil)
	t.Run("mixed array", func(t *testing.T) {
		body := `[{"influencer_id":"b1","product":"product","event_id":"tx-1"},{"product":"product"},{"influencer_id":"b2","product":"product","country":"fr"}]`
		a := do(t, "POST", e.url+"/"+testKey+"/batch", "application/json", []byte(body))
		if a.code != 207 {
			t.Fatalf("status %d %s, want 207", a.code, a.body)
		}
		var got batchBody
		if err := json.Unmarshal(a.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Accepted != 2 || got.Rejected != 1 || len(got.Results) != 3 {
			t.Fatalf("got %+v", got)
		}
		if r := got.Results[1]; r.Status != 400 || r.Field != "influencer_id" || r.Index != 1 {
			t.Errorf("item 1: %+v", r)
		}
		for _, i := range []int{0, 2} {
			if r := got.Results[i]; r.Status != 202 || !uuidV7.MatchString(r.ID) {
				t.Errorf("item %d: %+v", i, r)
			}
		}
	})
	t.Run("ndjson", func(t *testing.T) {
		body := "{\"influencer_id\":\"n1\",\"product\":\"product\"}\n{\"influencer_id\":\"n2\",\"product\":\"product\"}\n"
		a := do(t, "POST", e.url+"/"+testKey+"/batch", "application/x-ndjson", []byte(body))
		if a.code != 202 {
			t.Fatalf("status %d %s, want 202", a.code, a.body)
		}
	})
	t.Run("all invalid", func(t *testing.T) {
		a := do(t, "POST", e.url+"/"+testKey+"/batch", "", []byte(`[{"product":"product"}]`))
		if a.code != 400 {
			t.Fatalf("status %d %s, want 400", a.code, a.body)
		}
	})
	t.Run("too many items", func(t *testing.T) {
		body := "[" + strings.Repeat(`{},`, 1000) + "{}]"
		a := do(t, "POST", e.url+"/"+testKey+"/batch", "", []byte(body))
		if a.code != 400 || a.json(t)["field"] != "body" {
			t.Fatalf("status %d %s, want 400 on body", a.code, a.body)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		a := do(t, "POST", e.url+"/unknown-access-key/batch", "", []byte(`[{"influencer_id":"a","product":"product"}]`))
		if a.code != 401 {
			t.Fatalf("status %d, want 401", a.code)
		}
	})
	recs := kafkatest.ReadAll(t, e.b.Addr(), e.names.Postbacks(), 4, 10*time.Second)
	if len(recs) != 4 {
		t.Fatalf("read %d records from the topic, want 4", len(recs))
	}
	var withEventID int
	for _, r := range recs {
		var p schemas.Postback
		if err := json.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		if p.EventID == "tx-1" {
			withEventID++
		}
	}
	if withEventID != 1 {
		t.Errorf("%d records carry event_id tx-1, want 1", withEventID)
	}
}

// TestRecordInTopic posts the example postback and reads the record back: key,
// partition (sarama-compatible), fields, fingerprint, no IP anywhere, and
// conformance to schemas/postback.v1.schema.json.
func TestRecordInTopic(t *testing.T) {
	e := startEdge(t, nil)
	before := time.Now().UTC()
	a := do(t, "POST", e.url+"/"+testKey, "application/json", []byte(exampleBody))
	if a.code != 202 {
		t.Fatalf("status %d %s", a.code, a.body)
	}
	id := a.json(t)["id"].(string)
	get := do(t, "GET", e.url+"/"+testKey+"?influencer_id=influ_test&product=product&ip="+testIP+"&user_agent="+url.QueryEscape(testUA)+"&event_id=tx%2042", "", nil)
	if get.code != 202 {
		t.Fatalf("GET status %d %s", get.code, get.body)
	}
	v6 := do(t, "POST", e.url+"/"+anyProdKey, "", []byte(`{"influencer_id":"x","product":"y","ip":"2001:db8::7","user_agent":"UA"}`))
	if v6.code != 202 {
		t.Fatalf("IPv6 status %d %s", v6.code, v6.body)
	}

	recs := kafkatest.ReadAll(t, e.b.Addr(), e.names.Postbacks(), 3, 10*time.Second)
	if len(recs) != 3 {
		t.Fatalf("read %d records, want 3", len(recs))
	}
	schema := compileSchema(t, schemas.PostbackV1Schema)
	var first, second schemas.Postback
	var firstKey string
	for _, r := range recs {
		for _, ip := range []string{testIP, "2001:db8::7", "132.244", hex.EncodeToString([]byte(testIP))} {
			if bytes.Contains(r.Value, []byte(ip)) || bytes.Contains(r.Key, []byte(ip)) {
				t.Errorf("the topic holds the IP %q: %s", ip, r.Value)
			}
			for _, h := range r.Headers {
				if bytes.Contains(h.Value, []byte(ip)) {
					t.Errorf("a header holds the IP %q", ip)
				}
			}
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Value))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("record %s does not match postback.v1.schema.json: %v", r.Value, err)
		}
		if want := kafkautil.PartitionFor(r.Key, testPartits); r.Partition != want {
			t.Errorf("key %s on partition %d, want %d (sarama FNV-1a)", r.Key, r.Partition, want)
		}
		var p schemas.Postback
		if err := json.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != schemas.PostbackKey(&p) {
			t.Errorf("key %q, want %q (the postback's first claim, else its day row)", r.Key, schemas.PostbackKey(&p))
		}
		switch p.ID {
		case id:
			first = p
			firstKey = string(r.Key)
		case get.json(t)["id"]:
			second = p
		}
		if r.Partition < 0 {
			t.Fatal("negative partition")
		}
	}
	if first.ID == "" || second.ID == "" {
		t.Fatalf("records with the answered ids not found")
	}
	// Keyed by the first claim (the visitor's, the example has ip and
	// user_agent and anti-cheat is on), so the claims processor reads it
	// where it lands.
	if schemas.ClaimOfKey(firstKey) != schemas.ClaimVisitor {
		t.Errorf("key %q of the example postback is not its visitor claim", firstKey)
	}
	want := schemas.Attrs{
		InfluencerID: "influ_test", Product: "product", EventType: "reg", EventName: "registration",
		Campaign: "Jan2024_special_event", Medium: "Influencer", Source: "twitch", Country: "FR",
	}
	if first.Attrs != want {
		t.Errorf("attrs %+v\nwant %+v", first.Attrs, want)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	if first.V != 1 || first.CustomerCode != "default" || first.TimeZone != "Europe/Paris" || !first.AntiCheat ||
		first.Day != schemas.DayOf(first.ReceivedAt, paris) || first.ReceivedAt.Before(before.Add(-time.Second)) ||
		first.ReceivedAt.Location() != time.UTC {
		t.Errorf("record %+v", first)
	}
	if len(first.Visitor) != 64 {
		t.Errorf("visitor %q, want 64 hex digits", first.Visitor)
	}
	if first.Visitor != second.Visitor {
		t.Errorf("the same ip and user agent on the same day gave two fingerprints: %s, %s", first.Visitor, second.Visitor)
	}
	if second.EventID != "tx 42" || second.EventType != schemas.DefaultEventType {
		t.Errorf("GET record %+v", second)
	}
	salt, ok := e.salts.get(first.Day)
	if !ok || Fingerprint(salt, "default", testIP, testUA) != first.Visitor {
		t.Errorf("the visitor is not HMAC(salt of %s, customer|ip|user_agent)", first.Day)
	}
}

func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	b, err := schemas.Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRequestSchema checks the API body schema against the example postback and
// the edge's own validation of a few bodies.
func TestRequestSchema(t *testing.T) {
	s := compileSchema(t, schemas.PostbackRequestSchema)
	for body, valid := range map[string]bool{
		exampleBody:       true,
		`{"product":"p"}`: false,
		`{"influencer_id":"a","product":"p","country":"FRA"}`: false,
		`{"influencer_id":"a","product":"p","extra":1}`:       true,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Validate(inst)
		var r Request
		edgeOK := DecodeJSON([]byte(body), &r) == nil && r.Validate() == nil
		if (err == nil) != valid || edgeOK != valid {
			t.Errorf("%s: schema error %v, edge accepts %v; want valid=%v", body, err, edgeOK, valid)
		}
	}
}

// TestBrokerDown stops the broker under a running edge: every answer is a
// 503 with Retry-After within 2 s, none is a 2xx. Then a broker starts
// again on the same address and data directory: the edge recovers by
// itself (202 and /readyz 200), with no restart.
func TestBrokerDown(t *testing.T) {
	var logs testrun.Buffer
	dir := t.TempDir()
	b := kafkatest.Start(t, dir)
	e := startEdgeOn(t, b, func(c *Config) {
		// Below the bound, which the answers must keep even on a busy
		// machine.
		c.ProduceTimeout = time.Second
		c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if a := do(t, "POST", e.url+"/"+testKey, "", []byte(exampleBody)); a.code != 202 {
		t.Fatalf("before the outage: %d %s", a.code, a.body)
	}
	addr := b.Addr()
	b.Close()
	const bound = 2 * time.Second
	client := &http.Client{Timeout: 5 * time.Second} // far above the bound: a hang fails the test
	var slowest time.Duration
	for i := range 3 {
		for _, path := range []string{"/" + testKey, "/" + testKey + "/batch", "/" + testKey + "?influencer_id=g&product=product"} {
			body, method := exampleBody, "POST"
			switch {
			case strings.HasSuffix(path, "batch"):
				body = "[" + exampleBody + "," + exampleBody + "]"
			case strings.Contains(path, "?"):
				body, method = "", "GET"
			}
			req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			slowest = max(slowest, took)
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("request %d to %s %s: %d %s, Retry-After %q; want 503 with Retry-After", i, method, redactPath(path), resp.StatusCode, rb, resp.Header.Get("Retry-After"))
			}
			if took > bound {
				t.Errorf("request %d to %s %s answered after %v, want within %v", i, method, redactPath(path), took, bound)
			}
		}
	}
	t.Logf("the slowest 503 came after %v", slowest)
	if a := do(t, "GET", e.url+"/readyz", "", nil); a.code != 503 {
		t.Errorf("/readyz answered %d with the broker down", a.code)
	}

	// The broker comes back on the same address, with its data.
	var b2 *broker.Broker
	kafkatest.Eventually(t, 10*time.Second, "the broker restarted on "+addr, func() bool {
		var err error
		b2, err = broker.Start(broker.Config{Addr: addr, DataDir: dir})
		return err == nil
	})
	t.Cleanup(b2.Close)
	back := time.Now()
	var during []int
	kafkatest.Eventually(t, 30*time.Second, "a 202 after the broker came back", func() bool {
		a := do(t, "POST", e.url+"/"+testKey, "", []byte(exampleBody))
		during = append(during, a.code)
		if a.code != 202 && a.code != 503 {
			t.Fatalf("answer %d %s while recovering, want 202 or 503", a.code, a.body)
		}
		return a.code == 202
	})
	t.Logf("recovered %v after the broker came back (%d requests)", time.Since(back).Round(time.Millisecond), len(during))
	for i := range 5 {
		if a := do(t, "POST", e.url+"/"+testKey+"/batch", "", []byte("["+exampleBody+"]")); a.code != 202 {
			t.Errorf("batch %d after recovery: %d %s", i, a.code, a.body)
		}
	}
	kafkatest.Eventually(t, 10*time.Second, "/readyz 200 after recovery", func() bool {
		return do(t, "GET", e.url+"/readyz", "", nil).code == 200
	})

	out := logs.String()
	if !strings.Contains(out, "answering 503") {
		t.Errorf("the outage was not logged:\n%s", out)
	}
	if strings.Contains(out, testKey) || strings.Contains(out, testIP) {
		t.Errorf("the log holds an access key or an IP:\n%s", out)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := startEdge(t, func(c *Config) { c.Registerer = reg })
	if a := do(t, "GET", e.url+"/healthz", "", nil); a.code != 200 {
		t.Fatalf("/healthz %d", a.code)
	}
	do(t, "POST", e.url+"/"+testKey, "", []byte(exampleBody))
	do(t, "POST", e.url+"/unknown-access-key", "", []byte(exampleBody))
	a := do(t, "GET", e.url+"/metrics", "", nil)
	for _, want := range []string{
		`streamtools_ingest_requests_total{code="202",endpoint="post"} 1`,
		`streamtools_ingest_requests_total{code="401",endpoint="post"} 1`,
		`streamtools_ingest_produce_seconds_count 1`,
		`streamtools_ingest_postbacks_total{result="accepted"} 1`,
		`streamtools_ingest_salt_days 4`,
	} {
		if !strings.Contains(string(a.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/test-access-key": "/{key}", "/test-access-key/batch": "/{key}/batch", "/metrics": "/metrics",
	} {
		if got := redactPath(in); got != want || strings.Contains(got, "access") {
			t.Errorf("redactPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// readSalts returns every record of the salts topic.
func readSalts(t *testing.T, addr, topic string, want int) []*kgo.Record {
	return kafkatest.ReadAll(t, addr, topic, want, 10*time.Second)
}

// TestRevokeTakesEffect: a key that worked (and is cached) stops working
// once revoked, without a restart.
func TestRevokeTakesEffect(t *testing.T) {
	e := startEdge(t, nil)
	cl := kafkatest.Client(t, e.b.Addr())
	ctx := context.Background()
	rec, err := tenant.PutKey(ctx, cl, e.names, "soon-revoked-key", "default", "x")
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 10*time.Second, "the new key accepted", func() bool {
		return do(t, "POST", e.url+"/soon-revoked-key", "", []byte(exampleBody)).code == 202
	})
	if err := tenant.RevokeKey(ctx, cl, e.names, rec); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 10*time.Second, "the revoked key refused", func() bool {
		return do(t, "POST", e.url+"/soon-revoked-key", "", []byte(exampleBody)).code == 401
	})
}

// TestMaxConns: a connection beyond MaxConns gets the JSON 503 with
// Retry-After, like every other error, not fasthttp's plain text; a place
// given back is taken again.
func TestMaxConns(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.MaxConns = 1 })
	// The readiness probes left a keep-alive connection open.
	http.DefaultClient.CloseIdleConnections()
	healthz := func(conn net.Conn) (*http.Response, []byte, error) {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return nil, nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	// take holds a connection once the edge served it.
	take := func() net.Conn {
		var held net.Conn
		kafkatest.Eventually(t, 10*time.Second, "the edge to serve one connection", func() bool {
			conn, err := net.Dial("tcp", e.Addr())
			if err != nil {
				return false
			}
			if resp, _, err := healthz(conn); err == nil && resp.StatusCode == 200 {
				held = conn
				return true
			}
			conn.Close()
			return false
		})
		return held
	}
	a := take()
	for i := range 3 {
		b, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		resp, body, err := healthz(b)
		b.Close()
		if err != nil {
			t.Fatalf("connection %d over the limit: %v", i, err)
		}
		var m map[string]any
		switch {
		case resp.StatusCode != 503:
			t.Fatalf("connection %d over the limit: %d %s, want 503", i, resp.StatusCode, body)
		case resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil:
			t.Fatalf("503 is %q: %s, want JSON", resp.Header.Get("Content-Type"), body)
		case resp.Header.Get("Retry-After") != "1":
			t.Errorf("Retry-After %q, want 1", resp.Header.Get("Retry-After"))
		}
		if msg, _ := m["error"].(string); !strings.Contains(msg, "--max-conns") {
			t.Errorf("message %q does not name --max-conns", msg)
		}
	}
	a.Close()
	take().Close()
}

// TestHeadIsNotAPostback: Fiber's Get also routes HEAD, and fasthttp reads
// the body of a HEAD that has a Content-Length. A HEAD on /{access_key}
// must store nothing: it answers 405 with Allow, like any other method
// that is not GET or POST, and without a body.
func TestHeadIsNotAPostback(t *testing.T) {
	e := startEdge(t, nil)
	query := "/" + testKey + "?influencer_id=influ_head&product=product"
	for _, tt := range []struct{ name, req, allow string }{
		{"query", "HEAD " + query + " HTTP/1.1\r\nHost: x\r\n\r\n", "GET, POST"},
		{"JSON body", fmt.Sprintf("HEAD /%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", testKey, len(exampleBody), exampleBody), "GET, POST"},
		{"batch", fmt.Sprintf("HEAD /%s/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n[%s]", testKey, len(exampleBody)+2, exampleBody), "POST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, healthz := testrun.HeadThenHealthz(t, e.Addr(), tt.req)
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != tt.allow {
				t.Errorf("HEAD: %d, Allow %q; want 405 with Allow %q", resp.StatusCode, resp.Header.Get("Allow"), tt.allow)
			}
			if healthz != "ok\n" {
				t.Errorf("the GET /healthz after the HEAD answered %q: the HEAD's answer carried a body", healthz)
			}
		})
	}
	// A POST after the HEADs: the topic then holds it and nothing else.
	a := do(t, "POST", e.url+"/"+testKey, "", []byte(exampleBody))
	if a.code != 202 {
		t.Fatalf("POST: %d %s", a.code, a.body)
	}
	recs := kafkatest.ReadToEnd(t, e.b.Addr(), e.names.Postbacks(), 10*time.Second)
	if len(recs) != 1 || !bytes.Contains(recs[0].Value, []byte(a.json(t)["id"].(string))) {
		for _, r := range recs {
			t.Logf("record: %s", r.Value)
		}
		t.Errorf("the postbacks topic holds %d records, want the POST's alone", len(recs))
	}
}

// TestListenError: an address in use is named as given, without the Go
// field name; the command that calls New adds its flag's name. New closes
// the Kafka clients it made, its own tenant registry's included.
func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := kafkatest.ClientGoroutines()
	_, err = New(Config{
		Addr: ln.Addr().String(), Brokers: []string{"127.0.0.1:1"}, Names: kafkatest.Names(t),
		Registerer: prometheus.NewRegistry(),
	})
	want := "ingest: listening on " + ln.Addr().String() + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("New on an address in use: %v; want an error starting %q", err, want)
	}
	kafkatest.Eventually(t, 5*time.Second, "the clients New made to be closed", func() bool {
		return kafkatest.ClientGoroutines() <= before
	})
}
