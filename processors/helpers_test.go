package processors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

const testPartitions = 4

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("PROCESSORS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startPipeline runs one instance until the test ends or stop is called.
func startPipeline(t testing.TB, addr string, n schemas.Names, dir string, mod ...func(*processors.Config)) (stop func()) {
	t.Helper()
	cfg := processors.Config{
		Brokers: []string{addr}, Names: n, StateDir: dir, Log: testLog(t),
		Partitions: testPartitions, MaintainEvery: -1,
	}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := processors.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return testrun.Start(t, "pipeline", p.Run).Stop
}

// newCluster starts a broker with the core topics of a fresh name prefix,
// and a client for it.
func newCluster(t testing.TB) (*broker.Broker, schemas.Names, *kgo.Client) {
	t.Helper()
	b := kafkatest.Start(t, "")
	n := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), n, testPartitions)
	return b, n, kafkatest.Client(t, b.Addr())
}

// produce writes postbacks keyed and partitioned as the edge does, in order.
func produce(t testing.TB, cl *kgo.Client, n schemas.Names, pbs []schemas.Postback) {
	t.Helper()
	produceKeyed(t, cl, n, pbs, schemas.PostbackKey)
}

// produceKeyed writes postbacks with the key of key(pb), in order.
func produceKeyed(t testing.TB, cl *kgo.Client, n schemas.Names, pbs []schemas.Postback, key func(*schemas.Postback) string) {
	t.Helper()
	recs := make([]*kgo.Record, len(pbs))
	for i := range pbs {
		b, err := json.Marshal(&pbs[i])
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: n.Postbacks(), Key: []byte(key(&pbs[i])), Value: b}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// latest reads topic from the start to its current end and returns the
// latest value of every key (deleted keys absent).
func latest(t testing.TB, addr, topic string) map[string][]byte {
	t.Helper()
	cl := kafkatest.Client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	out := map[string][]byte{}
	if len(want) == 0 {
		return out
	}
	offs := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range want {
		offs[topic][p] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(offs))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				delete(out, string(r.Key))
			} else {
				out[string(r.Key)] = r.Value
			}
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// counts is the comparable part of a Stats row.
type counts struct {
	Customer, Product, Influencer, Campaign, Day string
	ByType                                       map[string]schemas.Counts
	Total                                        int64
}

func tableCounts(t testing.TB, addr, topic string) map[string]counts {
	out := map[string]counts{}
	for k, v := range latest(t, addr, topic) {
		var s schemas.Stats
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatalf("decoding %s row %q: %v", topic, k, err)
		}
		out[k] = counts{s.CustomerCode, s.Product, s.InfluencerID, s.Campaign, s.Day, s.ByType, s.Total}
	}
	return out
}

// ref is the reference: the stats table and the verdicts computed
// directly from the input.
type ref struct {
	Day      map[string]counts
	Verdicts map[string]string // postback id -> verdict/reason
}

// reference decides every postback in input order, as the processors
// document it: with anti-cheat on, a repeated (customer, product,
// event_type, day, visitor) is a duplicate_visitor; then a repeated event_id
// of a customer within retention is a duplicate_event_id. The first postback
// to reach a claim holds it; a postback takes a claim only while it still
// counts (a duplicate_visitor claims no event id).
func reference(pbs []schemas.Postback, retention time.Duration) ref {
	r := ref{map[string]counts{}, map[string]string{}}
	type claim struct {
		owner string
		at    time.Time
	}
	eventIDs := map[string]claim{}
	visitors := map[string]string{}
	for _, pb := range pbs {
		et := schemas.EventType(&pb)
		verdict, reason := schemas.VerdictCounted, ""
		if pb.AntiCheat && pb.Visitor != "" {
			k := strings.Join([]string{pb.CustomerCode, pb.Product, et, pb.Day, pb.Visitor}, "\x00")
			if o, ok := visitors[k]; !ok {
				visitors[k] = pb.ID
			} else if o != pb.ID {
				verdict, reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateVisitor
			}
		}
		if pb.EventID != "" && verdict == schemas.VerdictCounted {
			k := pb.CustomerCode + "\x00" + pb.EventID
			c, ok := eventIDs[k]
			if !ok || pb.ReceivedAt.Sub(c.at) >= retention {
				eventIDs[k] = claim{pb.ID, pb.ReceivedAt}
			} else if c.owner != pb.ID {
				verdict, reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateEventID
			}
		}
		r.Verdicts[pb.ID] = verdict + "/" + reason
		addCount(r.Day, schemas.DayKey(pb.CustomerCode, pb.Product, pb.InfluencerID, pb.Campaign, pb.Day),
			counts{pb.CustomerCode, pb.Product, pb.InfluencerID, pb.Campaign, pb.Day, nil, 0}, et, verdict, reason)
	}
	return r
}

func addCount(m map[string]counts, key string, id counts, et, verdict, reason string) {
	c, ok := m[key]
	if !ok {
		c = id
		c.ByType = map[string]schemas.Counts{}
	}
	bt := c.ByType[et]
	if verdict == schemas.VerdictCounted {
		bt.Counted++
		c.Total++
	} else {
		if bt.Duplicates == nil {
			bt.Duplicates = map[string]int64{}
		}
		bt.Duplicates[reason]++
	}
	c.ByType[et] = bt
	m[key] = c
}

// waitTables waits until the stats table equals the reference.
func waitTables(t testing.TB, addr string, n schemas.Names, want ref, timeout time.Duration) {
	t.Helper()
	waitCounts(t, timeout, n.StatsTable(), want.Day, func() map[string]counts { return tableCounts(t, addr, n.StatsTable()) })
}

// waitCounts polls get until it equals want.
func waitCounts(t testing.TB, timeout time.Duration, what string, want map[string]counts, get func() map[string]counts) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := get()
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s differs from the reference:\n%s", what, diff(got, want))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func diff(got, want map[string]counts) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			lines = append(lines, fmt.Sprintf("missing %q: want %+v", k, w))
		} else if !reflect.DeepEqual(g, w) {
			lines = append(lines, fmt.Sprintf("%q:\n   got  %+v\n   want %+v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("unexpected %q: %+v", k, g))
		}
	}
	sort.Strings(lines)
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("... and %d more", len(lines)-20))
	}
	return strings.Join(lines, "\n")
}

// gen makes n postbacks over a few customers, influencers, campaigns and
// event types. Visitors repeat, across influencers and campaigns too; event
// ids are fresh, or repeated by retries of an earlier postback of the same
// day (same visitor, same event id): a retry reaches its claims by the same
// path as the original, so verdicts do not depend on partition progress.
func gen(seed uint64, n int, start time.Time, step time.Duration) []schemas.Postback {
	rng := rand.New(rand.NewPCG(seed, 1))
	type cust struct {
		code, tz string
		ac       bool
	}
	custs := []cust{{"acme", "Europe/Paris", true}, {"globex", "America/New_York", false}, {"ini tech", "Asia/Tokyo", true}}
	out := make([]schemas.Postback, 0, n)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * step).UTC()
		id := fmt.Sprintf("pb-%d-%d", seed, i)
		if len(out) > 0 && rng.IntN(6) == 0 {
			orig := out[len(out)-1-rng.IntN(min(len(out), 10))]
			loc, _ := time.LoadLocation(orig.TimeZone)
			if orig.EventID != "" && schemas.DayOf(at, loc) == orig.Day {
				retry := orig
				retry.ID, retry.ReceivedAt = id, at
				out = append(out, retry)
				continue
			}
		}
		c := custs[rng.IntN(len(custs))]
		loc, _ := time.LoadLocation(c.tz)
		infl := fmt.Sprintf("influ_%d", rng.IntN(5))
		pb := schemas.Postback{
			V: schemas.PostbackVersion, ID: id, ReceivedAt: at,
			CustomerCode: c.code, TimeZone: c.tz, Day: schemas.DayOf(at, loc), AntiCheat: c.ac,
			Attrs: schemas.Attrs{
				InfluencerID: infl, Product: []string{"product", "app"}[rng.IntN(2)],
				EventType: []string{"reg", "dl", ""}[rng.IntN(3)],
				Campaign:  []string{"", "Jan2024_special_event", "été 2024"}[rng.IntN(3)],
			},
		}
		if rng.IntN(3) > 0 {
			pb.Visitor = fmt.Sprintf("v-%s-%d", pb.Product, rng.IntN(12))
		}
		if rng.IntN(2) == 0 {
			pb.EventID = fmt.Sprintf("tx-%d-%d", seed, i)
		}
		out = append(out, pb)
	}
	return out
}

func latestCount(t testing.TB, addr, topic string) int64 {
	t.Helper()
	cl := kafkatest.Client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	cl.Close()
	return sum
}
