package processors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/freeport"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

// brokerProcess is a kfake broker in a child process, so that a test can
// SIGKILL it and start it again on the same address and data directory.
type brokerProcess struct {
	t         *testing.T
	addr, dir string
	cmd       *exec.Cmd
}

func startBrokerProcess(t *testing.T) *brokerProcess {
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	bp := &brokerProcess{t: t, addr: addr, dir: t.TempDir()}
	bp.start()
	t.Cleanup(func() { bp.kill() })
	return bp
}

func (bp *brokerProcess) start() {
	bp.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBrokerAddr+"="+bp.addr, envBrokerDir+"="+bp.dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		bp.t.Fatal(err)
	}
	bp.cmd = cmd
	kafkatest.Eventually(bp.t, 30*time.Second, "the broker to listen", func() bool {
		c, err := net.DialTimeout("tcp", bp.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (bp *brokerProcess) kill() {
	if bp.cmd != nil {
		bp.cmd.Process.Signal(syscall.SIGKILL)
		bp.cmd.Wait()
		bp.cmd = nil
	}
}

// TestBrokerOutage kills the broker process (SIGKILL) for 10 s while the
// processors work through a backlog: the processors never stop, report not
// ready during the outage, and resume with exact counts, one decision per
// postback, and every source's records in order (checkSourceOrder).
func TestBrokerOutage(t *testing.T) {
	testBrokerOutages(t, 10*time.Second)
}

// TestBrokerQuickRestart does the same with a broker back after 0.5 s,
// twice: the restarted broker has forgotten the producers' sequence numbers
// and refuses their next batch, the case that made sarama's and franz-go's
// idempotent producers drop or reorder a batch (see gokautil.ProducerBuilder).
func TestBrokerQuickRestart(t *testing.T) {
	testBrokerOutages(t, 500*time.Millisecond, 500*time.Millisecond)
}

func testBrokerOutages(t *testing.T, outages ...time.Duration) {
	if testing.Short() {
		t.Skip("broker outages: skipped with -short; CI runs them")
	}
	bp := startBrokerProcess(t)
	n := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, bp.addr, n, testPartitions)
	pbs := gen(5, 2000*(1+len(outages)), time.Date(2026, 8, 1, 8, 0, 0, 0, time.UTC), 5*time.Second)
	cl := kafkatest.Client(t, bp.addr)
	produce(t, cl, n, pbs[:2000])

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p, err := processors.New(ctx, processors.Config{Brokers: []string{bp.addr}, Names: n, StateDir: t.TempDir(),
		Partitions: testPartitions, MaintainEvery: -1, Log: testLog(t), RestartBackoff: 200 * time.Millisecond})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	run := testrun.Start(t, "pipeline", p.Run)

	sent := 2000
	type outage struct {
		after  int64
		outage time.Duration
	}
	var plan []outage
	for i, d := range outages {
		plan = append(plan, outage{int64(1000 + 2500*i), d})
	}
	for _, c := range plan {
		kafkatest.Eventually(t, 60*time.Second, "events to flow", func() bool {
			return endOffsets(t, bp.addr, n.Events()) >= c.after
		})
		bp.kill()
		start := time.Now()
		if c.outage > time.Second {
			kafkatest.Eventually(t, c.outage, "the processors to report not ready", func() bool { return !p.Ready() })
		}
		time.Sleep(time.Until(start.Add(c.outage)))
		select {
		case <-run.Exited():
			t.Fatalf("the processors stopped during a %v broker outage: %v", c.outage, run.Err())
		default:
		}
		bp.start()
		t.Logf("broker down for %v after %d events", time.Since(start).Round(time.Millisecond), c.after)
		produce(t, cl, n, pbs[sent:sent+2000])
		sent += 2000
	}
	want := reference(pbs, 7*24*time.Hour)
	t.Cleanup(func() {
		if t.Failed() {
			explainLoss(t, bp.addr, n, want)
		}
	})
	waitTables(t, bp.addr, n, want, 180*time.Second)
	checkSourceOrder(t, bp.addr, n)
	checkEvents(t, bp.addr, n, want)
	kafkatest.Eventually(t, 30*time.Second, "the processors to report ready", p.Ready)
	select {
	case <-run.Exited():
		t.Fatalf("the processors stopped: %v", run.Err())
	default:
	}
	_ = schemas.DefaultPartitions
}

// checkSourceOrder checks the two orders the exactness argument rests on
// (docs/processors.md, "Why it is exact"), which a broker restart can break
// when a producer reorders or drops a batch and sends later ones:
//   - each claims-table changelog partition holds the decisions of one
//     source in input order (a decision written after a later one of its
//     source was skipped by nothing, but its event is);
//   - no event reaches its row for the first time after an event of the
//     same source at a higher offset (the row would skip it).
//
// Copies (a suffix sent again after a restart, a batch stored twice) are
// allowed. It returns the ids of late events.
func checkSourceOrder(t *testing.T, addr string, n schemas.Names) (late []string) {
	t.Helper()
	type decision struct {
		Last *struct {
			Pos schemas.Position `json:"pos"`
		} `json:"last"`
	}
	type source struct {
		key  string // changelog partition or stats row
		lane byte
		part int32
	}
	describe := func(r *kgo.Record, pos schemas.Position) string {
		return fmt.Sprintf("%s[%d]@%d %s key %q produced %s", r.Topic, r.Partition, r.Offset, pos, r.Key, r.Timestamp.Format("15:04:05.000"))
	}
	errs := 0
	high, at, decided := map[source]int64{}, map[source]string{}, map[string]bool{}
	for _, r := range kafkatest.ReadToEnd(t, addr, n.ClaimsTable(), 30*time.Second) {
		var d decision
		if json.Unmarshal(r.Value, &d) != nil || d.Last == nil {
			continue
		}
		s := source{fmt.Sprint(r.Partition), d.Last.Pos.Lane, d.Last.Pos.Partition}
		// A decision seen before is a copy: a batch stored and sent
		// again, its answer lost with the broker.
		id := fmt.Sprint(s, d.Last.Pos)
		if decided[id] {
			continue
		}
		decided[id] = true
		if d.Last.Pos.Offset < high[s] {
			if errs++; errs <= 5 {
				t.Errorf("claims changelog out of input order: %s after %s", describe(r, d.Last.Pos), at[s])
			}
		} else {
			high[s], at[s] = d.Last.Pos.Offset, describe(r, d.Last.Pos)
		}
	}
	high, at = map[source]int64{}, map[source]string{}
	seen := map[string]bool{}
	for _, r := range kafkatest.ReadToEnd(t, addr, n.Events(), 30*time.Second) {
		var ev schemas.Event
		if json.Unmarshal(r.Value, &ev) != nil || ev.ID == "" {
			continue
		}
		s := source{string(r.Key), ev.Src.Lane, ev.Src.Partition}
		if !seen[ev.ID] && ev.Src.Offset < high[s] {
			late = append(late, ev.ID)
			if errs++; errs <= 10 {
				t.Errorf("late event %s (%s) after %s", describe(r, ev.Src), ev.ID, at[s])
			}
		}
		seen[ev.ID] = true
		if ev.Src.Offset > high[s] {
			high[s], at[s] = ev.Src.Offset, describe(r, ev.Src)
		}
	}
	if errs > 10 {
		t.Errorf("... %d order errors in all", errs)
	}
	return late
}

// explainLoss shows, for each postback without an event or whose event came
// late, its trail: the postbacks topic, the claims-table changelog and the
// claims topic.
func explainLoss(t *testing.T, addr string, n schemas.Names, want ref) {
	where := func(topic string) map[string][]string {
		out := map[string][]string{}
		for _, r := range kafkatest.ReadToEnd(t, addr, topic, 30*time.Second) {
			for id := range want.Verdicts {
				if bytes.Contains(r.Value, []byte(id)) {
					out[id] = append(out[id], fmt.Sprintf("%s[%d]@%d key=%q %.700s", topic, r.Partition, r.Offset, r.Key, r.Value))
				}
			}
		}
		return out
	}
	events := where(n.Events())
	var missing []string
	for id := range want.Verdicts {
		if len(events[id]) == 0 {
			missing = append(missing, id)
		}
	}
	t.Logf("%d postbacks without an event: %v", len(missing), missing)
	missing = append(missing, checkSourceOrder(t, addr, n)...)
	if len(missing) > 10 {
		missing = missing[:10]
	}
	pbs, decisions, requests := where(n.Postbacks()), where(n.ClaimsTable()), where(n.Claims())
	for _, id := range missing {
		t.Logf("postback %s (want %s):\n  postbacks: %v\n  claims table: %v\n  claims topic: %v",
			id, want.Verdicts[id], pbs[id], decisions[id], requests[id])
	}
}
