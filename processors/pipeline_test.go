package processors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

// The child mode: a test re-executes its own binary to run the pipeline in
// a process it can SIGKILL.
const (
	envChildBroker = "PROCESSORS_TEST_CHILD_BROKER"
	envChildPrefix = "PROCESSORS_TEST_CHILD_PREFIX"
	envChildDir    = "PROCESSORS_TEST_CHILD_DIR"
	// The broker child: a kfake broker on this address and data directory.
	envBrokerAddr = "PROCESSORS_TEST_BROKER_ADDR"
	envBrokerDir  = "PROCESSORS_TEST_BROKER_DIR"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envBrokerAddr); addr != "" {
		if _, err := broker.Start(broker.Config{Addr: addr, DataDir: os.Getenv(envBrokerDir), Partitions: testPartitions}); err != nil {
			fmt.Fprintln(os.Stderr, "broker child:", err)
			os.Exit(3)
		}
		select {} // until killed
	}
	if addr := os.Getenv(envChildBroker); addr != "" {
		n := schemas.NewNames(os.Getenv(envChildPrefix))
		p, err := processors.New(context.Background(), processors.Config{
			Brokers: []string{addr}, Names: n, StateDir: os.Getenv(envChildDir),
			Partitions: testPartitions, MaintainEvery: -1,
		})
		if err == nil {
			err = p.Run(context.Background())
		}
		fmt.Fprintln(os.Stderr, "child pipeline stopped:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, addr string, n schemas.Names, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildBroker+"="+addr, envChildPrefix+"="+n.Prefix, envChildDir+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// checkEvents reads the events topic: every event is keyed by its day row;
// copies emitted again after a restart carry the same source position and
// verdict; every postback has exactly one decision (one source position),
// with the reference verdict.
func checkEvents(t *testing.T, addr string, n schemas.Names, want ref) {
	t.Helper()
	// Every record, copies included. The table may be complete a moment
	// before the last events land in the events topic (another
	// partition): read until every id is there.
	var recs []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs = kafkatest.ReadToEnd(t, addr, n.Events(), 60*time.Second)
		ids := map[string]bool{}
		for _, r := range recs {
			var ev struct{ ID string }
			if json.Unmarshal(r.Value, &ev) == nil {
				ids[ev.ID] = true
			}
		}
		if len(ids) >= len(want.Verdicts) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	type decision struct{ src, verdict string }
	got := map[string]decision{}
	copies := 0
	for _, r := range recs {
		var ev schemas.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("decoding event: %v", err)
		}
		if ev.ID == "" {
			continue // a bad record a test wrote (dead-lettered by stats)
		}
		if string(r.Key) != schemas.DayKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign, ev.Day) {
			t.Fatalf("event key %q does not match the event", r.Key)
		}
		d := decision{ev.Src.String(), ev.Verdict + "/" + ev.Reason}
		prev, seen := got[ev.ID]
		switch {
		case !seen:
			got[ev.ID] = d
		case prev == d:
			copies++ // emitted again after a restart: the stats row skips it
		default:
			t.Errorf("postback %s has two decisions: %+v and %+v", ev.ID, prev, d)
		}
	}
	for id, v := range want.Verdicts {
		if got[id].verdict != v {
			t.Errorf("postback %s: verdict %q, want %q", id, got[id].verdict, v)
		}
	}
	if len(got) != len(want.Verdicts) {
		t.Errorf("%d distinct events, want %d", len(got), len(want.Verdicts))
	}
	t.Logf("%d events, %d copies", len(got), copies)
}

// TestCountsMatchReference runs the pipeline over a mixed input (three
// customers, anti-cheat on and off, repeated visitors and event ids, bad
// records), checks tables and verdicts against the reference, then replays
// everything under generation 2 and checks the new tables are identical.
func TestCountsMatchReference(t *testing.T) {
	b, n, cl := newCluster(t)
	pbs := gen(1, 600, time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC), 37*time.Second)
	produce(t, cl, n, pbs[:300])

	// Bad records among good ones: garbage, a newer schema version, a
	// missing field, an event of an unknown version, a bad claim request.
	newer := pbs[0]
	newer.V, newer.ID = schemas.PostbackVersion+1, "newer"
	nv, _ := json.Marshal(newer)
	missing := pbs[1]
	missing.ID, missing.Day = "missing-day", ""
	mv, _ := json.Marshal(missing)
	bad := []*kgo.Record{
		{Topic: n.Postbacks(), Key: []byte("acme/product/x"), Value: []byte("{not json")},
		{Topic: n.Postbacks(), Key: []byte(schemas.PostbackKey(&newer)), Value: nv},
		{Topic: n.Postbacks(), Key: []byte(schemas.InfluencerKey(missing.CustomerCode, missing.Product, missing.InfluencerID)), Value: mv},
		{Topic: n.Events(), Key: []byte("acme/product/x//2026-03-01"), Value: []byte(`{"v":99}`)},
		{Topic: n.Claims(), Key: []byte(schemas.EventIDClaimKey("acme", "tx")), Value: []byte(`{"v":1}`)},
	}
	if err := cl.ProduceSync(context.Background(), bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, n, pbs[300:])

	startPipeline(t, b.Addr(), n, t.TempDir())
	want := reference(pbs, 7*24*time.Hour)
	waitTables(t, b.Addr(), n, want, 60*time.Second)
	checkEvents(t, b.Addr(), n, want)

	dls := kafkatest.ReadAll(t, b.Addr(), n.DeadLetter(), len(bad), 30*time.Second)
	if len(dls) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(bad))
	}
	for i, r := range dls {
		var dl schemas.DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Reason == "" || dl.Processor == "" || len(dl.Value) == 0 {
			t.Errorf("dead letter %d lacks reason, processor or bytes: %+v", i, dl)
		}
		found := false
		for _, b := range bad {
			found = found || bytes.Equal(b.Value, dl.Value)
		}
		if !found {
			t.Errorf("dead letter %d does not hold the original bytes: %q", i, dl.Value)
		}
		t.Logf("dead letter from %s: %s", dl.Processor, dl.Reason)
	}

	t.Run("ReplayNewGeneration", func(t *testing.T) {
		n2 := n
		n2.Generation = 2
		startPipeline(t, b.Addr(), n2, t.TempDir())
		waitTables(t, b.Addr(), n2, want, 60*time.Second)
		checkEvents(t, b.Addr(), n2, want)
		// Byte-identical rows but for the replay guard, which holds
		// positions in this generation's own topics.
		a, b := latest(t, b.Addr(), n.StatsTable()), latest(t, b.Addr(), n2.StatsTable())
		if len(a) != len(b) {
			t.Fatalf("%s has %d rows, %s %d", n.StatsTable(), len(a), n2.StatsTable(), len(b))
		}
		for k, v := range a {
			if g1, g2 := withoutGuard(t, v), withoutGuard(t, b[k]); !bytes.Equal(g1, g2) {
				t.Errorf("row %q differs after replay:\n  g1 %s\n  g2 %s", k, g1, g2)
			}
		}
	})
}

// withoutGuard is a stats row's JSON with its replay guard emptied.
func withoutGuard(t *testing.T, v []byte) []byte {
	t.Helper()
	var s schemas.Stats
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Applied) == 0 {
		t.Fatalf("stats row without a replay guard: %s", v)
	}
	s.Applied = nil
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProgressDependentTotals covers the inputs whose verdicts may depend
// on partition progress (docs/processors.md, "When partition progress
// matters"): postbacks keyed by influencer by an older producer, so that one
// visitor's postbacks reach its claim from several partitions; and one event
// id sent with several visitors, or with and without one. Which postback
// counts may differ between runs; the totals per customer, product, event
// type and day may not, and every postback has exactly one decision. A
// replay as generation 2 gives the same totals.
func TestProgressDependentTotals(t *testing.T) {
	b, n, cl := newCluster(t)
	start := time.Date(2026, 4, 2, 9, 0, 0, 0, time.UTC)
	misrouted := gen(4, 500, start, 7*time.Second)
	produceKeyed(t, cl, n, misrouted, func(pb *schemas.Postback) string {
		return schemas.InfluencerKey(pb.CustomerCode, pb.Product, pb.InfluencerID)
	})
	var shared []schemas.Postback
	for g := 0; g < 60; g++ {
		for i := 0; i < 4; i++ {
			at := start.Add(time.Duration(g*4+i) * 3 * time.Second)
			pb := schemas.Postback{
				V: 1, ID: fmt.Sprintf("shared-%d-%d", g, i), ReceivedAt: at, CustomerCode: "acme", TimeZone: "UTC",
				Day: schemas.DayOf(at, time.UTC), AntiCheat: true,
				Attrs: schemas.Attrs{InfluencerID: fmt.Sprintf("influ_%d", i), Product: "product",
					EventType: []string{"reg", "ftd"}[g%2], Campaign: []string{"", "spring"}[i%2],
					EventID: fmt.Sprintf("tx-shared-%d", g)},
			}
			if i < 3 {
				pb.Visitor = fmt.Sprintf("visitor-%d-%d", g, i) // fresh: every one passes its visitor claim
			}
			shared = append(shared, pb)
		}
	}
	produce(t, cl, n, shared)
	all := append(append([]schemas.Postback(nil), misrouted...), shared...)
	want := totals(reference(all, 7*24*time.Hour).Day)
	for _, names := range []schemas.Names{n, {Prefix: n.Prefix, Generation: 2}} {
		startPipeline(t, b.Addr(), names, t.TempDir())
		waitCounts(t, 60*time.Second, "totals of "+names.StatsTable(), want, func() map[string]counts {
			return totals(tableCounts(t, b.Addr(), names.StatsTable()))
		})
		// One decision per postback, and one counted per shared event id.
		recs := kafkatest.ReadToEnd(t, b.Addr(), names.Events(), 60*time.Second)
		decisions := map[string]string{}
		countedByEventID := map[string]int{}
		for _, r := range recs {
			var ev schemas.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			d := ev.Src.String() + " " + ev.Verdict
			if prev, ok := decisions[ev.ID]; ok {
				if prev != d {
					t.Fatalf("postback %s: two decisions %q and %q", ev.ID, prev, d)
				}
				continue
			}
			decisions[ev.ID] = d
			if strings.HasPrefix(ev.ID, "shared-") && ev.Verdict == schemas.VerdictCounted {
				countedByEventID[ev.EventID]++
			}
		}
		if len(decisions) != len(all) {
			t.Fatalf("%s: %d postbacks decided, want %d", names.Events(), len(decisions), len(all))
		}
		for g := 0; g < 60; g++ {
			if c := countedByEventID[fmt.Sprintf("tx-shared-%d", g)]; c != 1 {
				t.Fatalf("event id tx-shared-%d counted %d times, want once", g, c)
			}
		}
	}
}

// totals sums rows per customer, product, event type and day.
func totals(rows map[string]counts) map[string]counts {
	out := map[string]counts{}
	for _, r := range rows {
		for et, c := range r.ByType {
			k := strings.Join([]string{r.Customer, r.Product, et, r.Day}, "/")
			tot, ok := out[k]
			if !ok {
				tot = counts{Customer: r.Customer, Product: r.Product, Day: r.Day, ByType: map[string]schemas.Counts{}}
			}
			bt := tot.ByType[et]
			bt.Counted += c.Counted
			tot.Total += c.Counted
			for reason, d := range c.Duplicates {
				if bt.Duplicates == nil {
					bt.Duplicates = map[string]int64{}
				}
				bt.Duplicates[reason] += d
			}
			tot.ByType[et] = bt
			out[k] = tot
		}
	}
	return out
}

// TestHardKillMidBatch SIGKILLs a child process running the pipeline while
// it works through a backlog, restarts it, and checks exact counts.
func TestHardKillMidBatch(t *testing.T) {
	b, n, cl := newCluster(t)
	pbs := gen(2, 4000, time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), 11*time.Second)
	produce(t, cl, n, pbs[:3000])
	dir := t.TempDir()
	for round, threshold := range []int64{300, 1500} {
		child := startChild(t, b.Addr(), n, dir)
		kafkatest.Eventually(t, 60*time.Second, "the child to emit events", func() bool {
			return endOffsets(t, b.Addr(), n.Events()) >= threshold
		})
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		t.Logf("round %d: killed the child after %d events", round, endOffsets(t, b.Addr(), n.Events()))
	}
	produce(t, cl, n, pbs[3000:])
	startChild(t, b.Addr(), n, dir)
	want := reference(pbs, 7*24*time.Hour)
	waitTables(t, b.Addr(), n, want, 120*time.Second)
	checkEvents(t, b.Addr(), n, want)
}

// TestRebalanceStopOne runs two instances, stops one mid-stream, and checks
// that the survivor takes over its partitions with exact counts.
func TestRebalanceStopOne(t *testing.T) {
	b, n, cl := newCluster(t)
	pbs := gen(3, 2000, time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC), 13*time.Second)
	produce(t, cl, n, pbs[:1000])
	stopA := startPipeline(t, b.Addr(), n, filepath.Join(t.TempDir(), "a"))
	startPipeline(t, b.Addr(), n, filepath.Join(t.TempDir(), "b"))
	kafkatest.Eventually(t, 60*time.Second, "events to flow", func() bool {
		return endOffsets(t, b.Addr(), n.Events()) >= 300
	})
	produce(t, cl, n, pbs[1000:1500])
	stopA()
	produce(t, cl, n, pbs[1500:])
	want := reference(pbs, 7*24*time.Hour)
	waitTables(t, b.Addr(), n, want, 90*time.Second)
	checkEvents(t, b.Addr(), n, want)
}

// TestDayBoundaries sends the same visitor's action around midnight and
// across daylight-saving changes: the day (stamped at the edge with
// schemas.DayOf in the customer's zone) decides the duplicates and the
// daily rows.
func TestDayBoundaries(t *testing.T) {
	b, n, cl := newCluster(t)
	var pbs []schemas.Postback
	add := func(tz, localTime string) {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05", localTime, loc)
		if err != nil {
			t.Fatal(err)
		}
		pbs = append(pbs, schemas.Postback{
			V: 1, ID: fmt.Sprintf("pb-%d", len(pbs)), ReceivedAt: at.UTC(), CustomerCode: tz,
			TimeZone: tz, Day: schemas.DayOf(at, loc), AntiCheat: true, Visitor: "same-visitor",
			Attrs: schemas.Attrs{InfluencerID: "influ_test", Product: "product", EventType: "reg"},
		})
	}
	// Midnight in Paris: two days, both counted.
	add("Europe/Paris", "2026-03-10 23:59:59")
	add("Europe/Paris", "2026-03-11 00:00:00")
	add("Europe/Paris", "2026-03-11 23:59:00") // duplicate of the one above
	// Paris, last Sunday of October 2026: a 25-hour day. 00:30 and 23:30
	// (24 h apart in UTC) are the same day.
	add("Europe/Paris", "2026-10-25 00:30:00")
	add("Europe/Paris", "2026-10-25 23:30:00") // duplicate
	add("Europe/Paris", "2026-10-26 00:10:00") // next day: counted
	// New York, 2026-03-08: spring forward, a 23-hour day.
	add("America/New_York", "2026-03-08 00:10:00")
	add("America/New_York", "2026-03-08 23:50:00") // duplicate
	add("America/New_York", "2026-03-09 00:00:01") // counted
	produce(t, cl, n, pbs)
	startPipeline(t, b.Addr(), n, t.TempDir())
	want := reference(pbs, 7*24*time.Hour)
	waitTables(t, b.Addr(), n, want, 60*time.Second)
	checkEvents(t, b.Addr(), n, want)

	wantDays := map[string]int64{ // day row -> counted
		"Europe/Paris 2026-03-10": 1, "Europe/Paris 2026-03-11": 1,
		"Europe/Paris 2026-10-25": 1, "Europe/Paris 2026-10-26": 1,
		"America/New_York 2026-03-08": 1, "America/New_York 2026-03-09": 1,
	}
	got := map[string]int64{}
	dups := int64(0)
	for _, c := range tableCounts(t, b.Addr(), n.StatsTable()) {
		got[c.Customer+" "+c.Day] = c.Total
		dups += c.ByType["reg"].Duplicates[schemas.ReasonDuplicateVisitor]
	}
	if fmt.Sprint(got) != fmt.Sprint(wantDays) || dups != 3 {
		t.Fatalf("daily counted %v with %d visitor duplicates, want %v with 3", got, dups, wantDays)
	}
}

// TestBoundedState simulates 30 days of fresh visitors and event ids and
// runs maintenance as the days pass: the rows of the claims table stay
// bounded by the retention, not by the number of days.
func TestBoundedState(t *testing.T) {
	b, n, cl := newCluster(t)
	const days, perDay = 30, 40
	retention := 48 * time.Hour
	loc, _ := time.LoadLocation("Europe/Paris")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	var all []schemas.Postback
	dir := t.TempDir()
	var p *processors.Pipeline
	func() {
		cfg := processors.Config{Brokers: []string{b.Addr()}, Names: n, StateDir: dir, Partitions: testPartitions,
			MaintainEvery: -1, EventIDRetention: retention, Grace: time.Hour, Log: testLog(t)}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var err error
		p, err = processors.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		testrun.Start(t, "pipeline", p.Run)
	}()
	table := n.ClaimsTable()
	maxClaims := 0
	for d := 0; d < days; d++ {
		var pbs []schemas.Postback
		for i := 0; i < perDay; i++ {
			at := start.AddDate(0, 0, d).Add(time.Duration(i) * 30 * time.Minute)
			pbs = append(pbs, schemas.Postback{
				V: 1, ID: fmt.Sprintf("d%d-%d", d, i), ReceivedAt: at.UTC(), CustomerCode: "acme",
				TimeZone: "Europe/Paris", Day: schemas.DayOf(at, loc), AntiCheat: true,
				Visitor: fmt.Sprintf("visitor-%d-%d", d, i%30), // 10 repeats a day
				Attrs: schemas.Attrs{InfluencerID: fmt.Sprintf("influ_%d", i%3), Product: "product",
					EventType: "reg", EventID: fmt.Sprintf("tx-%d-%d", d, i%33)},
			})
		}
		produce(t, cl, n, pbs)
		all = append(all, pbs...)
		if d%5 != 4 && d != days-1 {
			continue
		}
		waitTables(t, b.Addr(), n, reference(all, retention), 60*time.Second)
		if err := p.Maintain(context.Background()); err != nil {
			t.Fatal(err)
		}
		claims := 0
		kafkatest.Eventually(t, 30*time.Second, "maintenance tombstones", func() bool {
			claims = 0
			for k := range latest(t, b.Addr(), table) {
				if schemas.ClaimOfKey(k) == 0 {
					t.Fatalf("claims table row %q is not a claim", k)
				}
				claims++
			}
			// at most: event ids of retention+grace+1 days, visitors of 3 days
			return claims <= 4*33+3*30
		})
		maxClaims = max(maxClaims, claims)
		t.Logf("day %d: %d live claims after maintenance (%d postbacks so far)", d+1, claims, len(all))
	}
	if maxClaims == 0 {
		t.Fatal("no claims at all: the test did not exercise anti-cheat")
	}
}

// endOffsets is the sum of the end offsets of topic's partitions.
func endOffsets(t testing.TB, addr, topic string) int64 {
	recs := latestCount(t, addr, topic)
	return recs
}

// TestDayOf pins the day boundary of schemas.DayOf around midnight and
// daylight-saving changes, as the edge stamps it.
func TestDayOf(t *testing.T) {
	for _, c := range []struct{ tz, utc, day string }{
		{"Europe/Paris", "2026-03-10T22:59:59Z", "2026-03-10"},
		{"Europe/Paris", "2026-03-10T23:00:00Z", "2026-03-11"},
		{"Europe/Paris", "2026-10-24T22:00:00Z", "2026-10-25"}, // 00:00 CEST
		{"Europe/Paris", "2026-10-25T00:59:59Z", "2026-10-25"}, // 02:59:59 CEST, then back to 02:00 CET
		{"Europe/Paris", "2026-10-25T22:59:59Z", "2026-10-25"}, // 23:59:59 CET: a 25-hour day
		{"Europe/Paris", "2026-10-25T23:00:00Z", "2026-10-26"},
		{"America/New_York", "2026-03-08T04:59:59Z", "2026-03-07"},
		{"America/New_York", "2026-03-08T05:00:00Z", "2026-03-08"}, // 00:00 EST
		{"America/New_York", "2026-03-09T03:59:59Z", "2026-03-08"}, // 23:59:59 EDT: a 23-hour day
		{"America/New_York", "2026-11-01T04:00:00Z", "2026-11-01"}, // 00:00 EDT
		{"America/New_York", "2026-11-02T04:59:59Z", "2026-11-01"}, // 23:59:59 EST: 25 hours
	} {
		loc, err := time.LoadLocation(c.tz)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := time.Parse(time.RFC3339, c.utc)
		if got := schemas.DayOf(at, loc); got != c.day {
			t.Errorf("DayOf(%s, %s) = %s, want %s", c.utc, c.tz, got, c.day)
		}
	}
}
