package processors_test

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/schemas"
)

// hotBurst makes n postbacks to one influencer key within an hour, the
// shape of a streamer's call to action: mostly new visitors, some repeated
// visitors, retries of earlier postbacks (same visitor and event id), and
// postbacks without a visitor, with or without an event id.
func hotBurst(seed uint64, n int, start time.Time) []schemas.Postback {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]schemas.Postback, 0, n)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * time.Hour / time.Duration(n))
		id := fmt.Sprintf("hot-%d-%d", seed, i)
		r := rng.IntN(100)
		if r < 10 && len(out) > 0 {
			retry := out[len(out)-1-rng.IntN(min(len(out), 50))]
			if retry.EventID != "" {
				retry.ID, retry.ReceivedAt = id, at
				out = append(out, retry)
				continue
			}
		}
		pb := schemas.Postback{
			V: 1, ID: id, ReceivedAt: at, CustomerCode: "acme", TimeZone: "UTC", Day: schemas.DayOf(at, time.UTC),
			AntiCheat: true,
			Attrs: schemas.Attrs{InfluencerID: "influ_hot", Product: "product",
				EventType: []string{"reg", "ftd"}[rng.IntN(2)], Campaign: []string{"", "spring"}[rng.IntN(2)]},
		}
		switch {
		case r < 60:
			pb.Visitor = fmt.Sprintf("new-%d", i)
		case r < 85:
			pb.Visitor = fmt.Sprintf("regular-%d", rng.IntN(500))
		}
		if rng.IntN(2) == 0 || pb.Visitor == "" && r >= 92 {
			pb.EventID = fmt.Sprintf("tx-%d-%d", seed, i)
		}
		out = append(out, pb)
	}
	return out
}

// Row size bounds stated in docs/processors.md, for testPartitions: a claim
// row holds one postback, its owner and up to 3 x partitions watermarks; a
// stats row its identity, one entry per event type and up to 2 x partitions
// watermarks.
const (
	maxClaimRowBytes    = 2048
	maxClaimRequestSize = 1024
	maxStatsRowBytes    = 1024
	maxEventBytes       = 1024
)

// TestHotInfluencer sends 20,000 postbacks to one influencer key, SIGKILLs
// the processors twice while they work through the backlog, and checks exact
// counts, one decision per postback, and the size of the largest record of
// every kind.
func TestHotInfluencer(t *testing.T) {
	b, n, cl := newCluster(t)
	pbs := hotBurst(1, 20_000, time.Date(2026, 6, 1, 20, 0, 0, 0, time.UTC))
	produce(t, cl, n, pbs[:15_000])
	dir := t.TempDir()
	for round, threshold := range []int64{3000, 9000} {
		child := startChild(t, b.Addr(), n, dir)
		kafkatest.Eventually(t, 120*time.Second, "the child to emit events", func() bool {
			return endOffsets(t, b.Addr(), n.Events()) >= threshold
		})
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		t.Logf("round %d: killed the child after %d events", round, endOffsets(t, b.Addr(), n.Events()))
		if round == 0 {
			produce(t, cl, n, pbs[15_000:])
		}
	}
	startChild(t, b.Addr(), n, dir)
	want := reference(pbs, 7*24*time.Hour)
	waitTables(t, b.Addr(), n, want, 180*time.Second)
	checkEvents(t, b.Addr(), n, want)
	if got := len(want.Day); got != 2 {
		t.Fatalf("%d day rows, want 2 (one influencer, two campaigns, one day)", got)
	}

	for _, c := range []struct {
		topic string
		bound int
	}{
		{n.ClaimsTable(), maxClaimRowBytes},
		{n.Claims(), maxClaimRequestSize},
		{n.StatsTable(), maxStatsRowBytes},
		{n.Events(), maxEventBytes},
	} {
		largest, records := 0, 0
		for _, r := range kafkatest.ReadToEnd(t, b.Addr(), c.topic, 60*time.Second) {
			largest = max(largest, len(r.Key)+len(r.Value))
			records++
		}
		t.Logf("%s: %d records, largest %d bytes (bound %d)", c.topic, records, largest, c.bound)
		if largest > c.bound || records == 0 {
			t.Errorf("%s: largest record %d bytes over %d records, bound %d", c.topic, largest, records, c.bound)
		}
	}
}

// expectedRecords is what the processors write for pbs with no restart:
// per postback one claims-table write per claim decided, one claim request
// when it goes on from its visitor claim to its event id, one event and one
// stats-row write. With the postback itself, at most 6.
func expectedRecords(pbs []schemas.Postback, want ref) (total int64, most int) {
	for i := range pbs {
		pb := &pbs[i]
		wanted := schemas.WantedClaims(pb)
		visitor := wanted&schemas.ClaimVisitor != 0
		eventID := wanted&schemas.ClaimEventID != 0 &&
			want.Verdicts[pb.ID] != schemas.VerdictDuplicate+"/"+schemas.ReasonDuplicateVisitor
		recs := 3 // postback, event, stats row
		if visitor {
			recs++
		}
		if eventID {
			recs++
		}
		if visitor && eventID {
			recs++
		}
		total += int64(recs)
		most = max(most, recs)
	}
	return total, most
}

// TestRecordsPerPostback counts, from the broker, the records written to
// every topic for a hot backlog of 2,000 and one of 10,000 postbacks: the
// count is exactly what the design says, at most 6 per postback, whatever
// the backlog.
func TestRecordsPerPostback(t *testing.T) {
	for _, size := range []int{2_000, 10_000} {
		b, n, cl := newCluster(t)
		pbs := hotBurst(uint64(size), size, time.Date(2026, 6, 2, 20, 0, 0, 0, time.UTC))
		produce(t, cl, n, pbs)
		startPipeline(t, b.Addr(), n, t.TempDir())
		want := reference(pbs, 7*24*time.Hour)
		waitTables(t, b.Addr(), n, want, 120*time.Second)
		wantTotal, most := expectedRecords(pbs, want)
		var got int64
		kafkatest.Eventually(t, 30*time.Second, "every record written", func() bool {
			got = 0
			for _, topic := range []string{n.Postbacks(), n.Claims(), n.ClaimsTable(), n.Events(), n.StatsTable()} {
				got += endOffsets(t, b.Addr(), topic)
			}
			return got >= wantTotal
		})
		if got != wantTotal || most > 6 {
			t.Fatalf("%d postbacks: %d records, want %d (at most %d per postback, bound 6)", size, got, wantTotal, most)
		}
		t.Logf("%d postbacks: %d records, %.2f per postback", size, got, float64(got)/float64(size))
	}
}
