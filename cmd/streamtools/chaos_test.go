package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/freeport"
	"github.com/streamtools/streamtools/internal/pgembed"
)

// envChildArgs makes the test binary run `streamtools <args>` (a JSON
// array) instead of the tests: the chaos test starts every component as
// its own process this way, as production runs them.
const envChildArgs = "STREAMTOOLS_TEST_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(envChildArgs); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, "bad", envChildArgs, err)
			os.Exit(2)
		}
		parts := devParts()
		if name := os.Getenv(envChildHang); name != "" {
			parts = hangOnStop(parts, name)
		}
		os.Exit(runMain(newAppWith(parts), append([]string{"streamtools"}, args...), os.Stderr))
	}
	os.Exit(m.Run())
}

// component is one `streamtools` process of the chaos test.
type component struct {
	name string
	args []string
	log  string // its stderr and stdout, appended across restarts

	mu   sync.Mutex // guards cmd, done and exit
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
	exit *error        // what cmd.Wait returned, once done is closed
}

func (c *component) start(t *testing.T) {
	t.Helper()
	b, _ := json.Marshal(c.args)
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildArgs+"="+string(b))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	exit := new(error)
	go func() { *exit = cmd.Wait(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done, c.exit = cmd, done, exit
	c.mu.Unlock()
}

// kill sends SIGKILL and waits for the exit.
func (c *component) kill() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.cmd = nil
	c.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		<-done
	}
}

// exited reports whether the process ended on its own, and how.
func (c *component) exited() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false, nil
	}
	select {
	case <-c.done:
		return true, *c.exit
	default:
		return false, nil
	}
}

func freePortT(t *testing.T) string {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// chaosPostback is one postback the load generator sends, and what
// became of it.
type chaosPostback struct {
	body       []byte
	influencer string
	campaign   string
	eventID    string
	ip, ua     string
	// answers
	id        string // from the 202
	acked     bool
	ambiguous bool // sent, but no answer or a 5xx: may or may not be stored
}

// chaosLoad makes n postbacks in groups that share a visitor or an event
// id; every postback of a group has the same influencer, campaign, event
// type and day, so the order in which they reach their claims never
// changes a daily_stats row. Group 0 of every ten goes to the hot
// influencer.
func chaosLoad(n int) [][]*chaosPostback {
	rng := rand.New(rand.NewPCG(11, 12))
	var groups [][]*chaosPostback
	seq := 0
	for seq < n {
		g := len(groups)
		infl := fmt.Sprintf("influ_%d", rng.IntN(200))
		if g%10 == 0 {
			infl = "influ_hot"
		}
		camp := []string{"", "spring"}[rng.IntN(2)]
		ip := fmt.Sprintf("203.0.%d.%d", g/250%250, g%250+1)
		ua := fmt.Sprintf("chaos/%d", g)
		var group []*chaosPostback
		size := 1 + rng.IntN(3) // 1 to 3 postbacks: repeated visitors, some repeating an event id
		for i := 0; i < size && seq < n; i++ {
			eid := fmt.Sprintf("chaos-tx-%d", seq)
			if i > 0 && rng.IntN(2) == 0 {
				eid = group[i-1].eventID // a sender's retry of the same event
			}
			pip := ip
			if i > 0 && rng.IntN(3) == 0 {
				pip = fmt.Sprintf("198.51.%d.%d", seq/250%250, seq%250+1) // another visitor: a repeated event id decides
			}
			pb := &chaosPostback{influencer: infl, campaign: camp, eventID: eid, ip: pip, ua: ua}
			pb.body, _ = json.Marshal(map[string]string{
				"influencer_id": infl, "product": "product", "event_type": "reg", "campaign": camp,
				"event_id": eid, "ip": pip, "user_agent": ua, "country": "FR",
			})
			group = append(group, pb)
			seq++
		}
		groups = append(groups, group)
	}
	return groups
}

// TestChaos runs the system as separate processes (broker with a data
// directory, two edges, two processors, a sink, widgetd, PostgreSQL) under
// HTTP load, kills each of them in turn with SIGKILL and restarts it, then
// checks that Postgres holds exactly the acknowledged postbacks and the
// exact counts, that widgets show what Postgres holds, and that no IP was
// written anywhere. It prints a report of the run.
func TestChaos(t *testing.T) {
	perKill := 8 * time.Second
	if testing.Short() {
		perKill = 3 * time.Second
	}
	// The load runs until the last kill is a perKill behind, at about 100
	// postbacks/s; total only bounds it.
	total := int(perKill/time.Second) * 7 * 150
	dir, err := os.MkdirTemp("", "streamtools-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept the run's directory (logs, broker data) for a look: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil { // PostgreSQL runs as the postgres user
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	brokerAddr := freePortT(t)
	prefix := fmt.Sprintf("chaos%d.", time.Now().UnixNano()%1e6)
	common := []string{"--brokers", brokerAddr, "--topic-prefix", prefix, "--partitions", "4", "--log-level", "info"}

	ctx := context.Background()
	var pg *pgembed.Cluster
	pg, err = pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "postgres"), Database: "streamtools", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(false) })
	dbURL := pg.URL("streamtools")

	comp := func(name string, args ...string) *component {
		return &component{name: name, args: args, log: filepath.Join(logs, name+".log")}
	}
	broker := comp("broker", "broker", "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "kafka"), "--partitions", "4")
	broker.start(t)
	t.Cleanup(broker.kill)
	waitTCP(t, brokerAddr)

	// The tenant: anti-cheat on, rate limit high enough for the load.
	tenantArgs := []string{"--brokers", brokerAddr, "--topic-prefix", prefix}
	mustRun(t, append([]string{"customers", "set", "--code", "acme", "--timezone", "Europe/Paris", "--anticheat"}, tenantArgs...)...)
	key := strings.TrimSpace(mustRun(t, append([]string{"keys", "create", "--customer", "acme"}, tenantArgs...)...))

	edges := []string{freePortT(t), freePortT(t)}
	widgetAddr := freePortT(t)
	comps := []*component{
		comp("ingest-1", append([]string{"ingest", "--listen", edges[0]}, common...)...),
		comp("ingest-2", append([]string{"ingest", "--listen", edges[1]}, common...)...),
		comp("process-1", append([]string{"process", "--state-dir", filepath.Join(dir, "process-1"), "--metrics-listen", freePortT(t)}, common...)...),
		comp("process-2", append([]string{"process", "--state-dir", filepath.Join(dir, "process-2"), "--metrics-listen", freePortT(t)}, common...)...),
		comp("sink", append([]string{"sink", "--database-url", dbURL, "--metrics-listen", freePortT(t)}, common...)...),
		comp("widgetd", append([]string{"widgetd", "--listen", widgetAddr}, common...)...),
	}
	byName := map[string]*component{"broker": broker}
	for _, c := range comps {
		c.start(t)
		t.Cleanup(c.kill)
		byName[c.name] = c
	}
	for _, e := range edges {
		waitReady(t, "http://"+e+"/readyz", 60*time.Second)
	}
	db := func() *pgx.Conn {
		t.Helper()
		var conn *pgx.Conn
		deadline := time.Now().Add(60 * time.Second)
		for {
			c, err := pgx.Connect(ctx, dbURL)
			if err == nil {
				conn = c
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("connecting to Postgres: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return conn
	}
	counted := func() (int64, error) { // rows of events: one per stored postback
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int64
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(counted + duplicates), 0) FROM daily_stats WHERE customer_code = 'acme'`).Scan(&n)
		return n, err
	}

	// The load: workers take whole groups, so the postbacks of one visitor
	// and one event id are sent one after the other, each after the
	// previous one's answer, alternating edges; a request without an
	// answer or with a 5xx is sent again (the same body and event id) on
	// the other edge until it gets a 202, as a sender retries.
	groups := chaosLoad(total)
	var (
		acked, sent atomic.Int64
		refusedMu   sync.Mutex
		refused     = map[string]int{}
	)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	loadDone := make(chan struct{})
	work := make(chan []*chaosPostback)
	var wg sync.WaitGroup
	var retried [][]*chaosPostback
	var retriedMu sync.Mutex
	rate := 10 * time.Millisecond // per worker: 8 x 1 / (8 x 10 ms) ~ 100 postbacks/s
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for g := range work {
				var attempts []*chaosPostback
				for _, pb := range g {
					for try := 0; ; try++ {
						edge := edges[(try+int(sent.Load()))%2]
						sent.Add(1)
						cur := &chaosPostback{}
						*cur = *pb
						resp, err := client.Post("http://"+edge+"/"+key, "application/json", bytes.NewReader(pb.body))
						if err != nil {
							cur.ambiguous = true
							attempts = append(attempts, cur)
							refusedMu.Lock()
							refused["no answer (edge down or timeout)"]++
							refusedMu.Unlock()
							time.Sleep(100 * time.Millisecond)
							continue
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusAccepted {
							var a struct{ ID string }
							json.Unmarshal(body, &a)
							cur.id, cur.acked = a.ID, true
							attempts = append(attempts, cur)
							acked.Add(1)
							break
						}
						cur.ambiguous = resp.StatusCode >= 500
						if cur.ambiguous {
							attempts = append(attempts, cur)
						}
						refusedMu.Lock()
						refused[fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))]++
						refusedMu.Unlock()
						if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
							t.Errorf("postback refused with %d: %s", resp.StatusCode, body)
							break
						}
						time.Sleep(200 * time.Millisecond)
					}
					time.Sleep(rate * 8)
				}
				retriedMu.Lock()
				retried = append(retried, attempts)
				retriedMu.Unlock()
			}
		})
	}
	killsDone := make(chan struct{})
	var fed atomic.Int64
	go func() {
		defer func() { close(work); wg.Wait(); close(loadDone) }()
		for _, g := range groups {
			select {
			case work <- g:
				fed.Add(int64(len(g)))
			case <-killsDone:
				return
			}
		}
	}()

	// The kills, one after another while the load runs.
	type killed struct {
		name       string
		down       time.Duration
		catchUp    time.Duration
		ackedAtRun int64
	}
	var kills []*killed
	var catchUps sync.WaitGroup
	for _, name := range []string{"process-1", "sink", "ingest-1", "widgetd", "postgres", "broker"} {
		time.Sleep(perKill)
		down := time.Second
		if name == "broker" {
			down = 3 * time.Second
		}
		start := time.Now()
		if name == "postgres" {
			pg.Kill()
			time.Sleep(down)
			deadline := time.Now().Add(60 * time.Second)
			for {
				err := pg.Start(ctx)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("restarting Postgres: %v", err)
				}
				time.Sleep(500 * time.Millisecond) // orphaned backends still hold its shared memory
			}
		} else {
			c := byName[name]
			c.kill()
			time.Sleep(down)
			c.start(t)
		}
		k := &killed{name: name, down: time.Since(start), ackedAtRun: acked.Load()}
		kills = append(kills, k)
		// Catch-up, measured while the next kills go on: until Postgres
		// counts everything acknowledged by the restart.
		catchUps.Go(func() {
			cu := time.Now()
			for time.Since(cu) < 5*time.Minute {
				if n, err := counted(); err == nil && n >= k.ackedAtRun {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			k.catchUp = time.Since(cu)
		})
		for _, c := range append(comps, broker) {
			if exited, how := c.exited(); exited {
				t.Fatalf("%s exited on its own (%v) after the %s kill; its log %s ends with:\n%s", c.name, how, name, c.log, tailFile(c.log))
			}
		}
	}
	time.Sleep(perKill)
	close(killsDone)
	<-loadDone
	catchUps.Wait()

	// Quiet: wait until Postgres holds everything, then check.
	var stored []*chaosPostback
	for _, a := range retried {
		stored = append(stored, a...)
	}
	wantAcked := acked.Load()
	kafkaDeadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := counted()
		if err == nil && n >= wantAcked {
			break
		}
		if time.Now().After(kafkaDeadline) {
			t.Fatalf("Postgres counts %d postbacks, %d acknowledged (err %v)", n, wantAcked, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // let ambiguous ones that were stored late land too
	conn := db()
	defer conn.Close(ctx)

	// events: exactly one row per acknowledged postback; any other row is a
	// request whose answer was lost (ambiguous), at most one per such request.
	rows, err := conn.Query(ctx, `SELECT id, event_id, influencer_id, campaign FROM events WHERE customer_code = 'acme'`)
	if err != nil {
		t.Fatal(err)
	}
	ackedIDs := map[string]bool{}
	ambiguousByEventID := map[string]int{}
	for _, a := range stored {
		if a.acked {
			ackedIDs[a.id] = true
		} else if a.ambiguous {
			ambiguousByEventID[a.eventID]++
		}
	}
	seen := map[string]int{}
	extraByEventID := map[string]int{}
	var extras []string
	for rows.Next() {
		var id, eid, infl, camp string
		if err := rows.Scan(&id, &eid, &infl, &camp); err != nil {
			t.Fatal(err)
		}
		seen[id]++
		if !ackedIDs[id] {
			extraByEventID[eid]++
			extras = append(extras, eid)
		}
	}
	rows.Close()
	missing := 0
	var missingIDs []string
	for id := range ackedIDs {
		if seen[id] != 1 {
			missing++
			missingIDs = append(missingIDs, id)
			if missing < 5 {
				t.Errorf("acknowledged postback %s has %d rows in events", id, seen[id])
			}
		}
	}
	for eid, n := range extraByEventID {
		if n > ambiguousByEventID[eid] {
			t.Errorf("event_id %s: %d rows without a 202, but only %d requests without an answer", eid, n, ambiguousByEventID[eid])
		}
	}

	// daily_stats equals the reference over what was stored, exactly.
	type rowKey struct{ influencer, campaign string }
	type counts struct{ counted, dupVisitor, dupEventID int64 }
	want := map[rowKey]counts{}
	// Rows where a request got no answer or a 5xx: the record may have
	// reached the broker later than its retry (an edge's producer still
	// held it), after other postbacks of its visitor, so which of them
	// counted, and why the others are duplicates, may differ from the send
	// order (a postback that would have counted can lose its visitor to the
	// late one). Their total cannot: one verdict per stored postback.
	reordered := map[rowKey]bool{}
	visitors := map[string]bool{}
	eventIDs := map[string]bool{}
	extraLeft := maps.Clone(extraByEventID)
	for _, g := range retried {
		for _, a := range g {
			storedHere := a.acked
			if !a.acked && a.ambiguous && extraLeft[a.eventID] > 0 {
				extraLeft[a.eventID]--
				storedHere = true
			}
			if !storedHere {
				continue
			}
			k := rowKey{a.influencer, a.campaign}
			if a.ambiguous {
				reordered[k] = true
			}
			c := want[k]
			v := a.ip + "|" + a.ua
			switch {
			case visitors[v]:
				c.dupVisitor++
			case eventIDs[a.eventID]:
				visitors[v] = true
				c.dupEventID++
			default:
				visitors[v], eventIDs[a.eventID] = true, true
				c.counted++
			}
			want[k] = c
		}
	}
	got := map[rowKey]counts{}
	drows, err := conn.Query(ctx, `SELECT influencer_id, campaign, sum(counted), sum(duplicate_visitor), sum(duplicate_event_id)
		FROM daily_stats WHERE customer_code = 'acme' GROUP BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	for drows.Next() {
		var k rowKey
		var c counts
		if err := drows.Scan(&k.influencer, &k.campaign, &c.counted, &c.dupVisitor, &c.dupEventID); err != nil {
			t.Fatal(err)
		}
		got[k] = c
	}
	drows.Close()
	if len(got) != len(want) {
		t.Errorf("daily_stats has %d influencer/campaign rows, the reference %d", len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g := got[k]
		if reordered[k] {
			w = counts{counted: w.counted + w.dupVisitor + w.dupEventID}
			g = counts{counted: g.counted + g.dupVisitor + g.dupEventID}
		}
		if g != w {
			bad++
			if bad <= 10 {
				t.Errorf("daily_stats %v: got %+v, want %+v", k, got[k], w)
			}
		}
	}

	// Widgets: the snapshot of a sample of influencers equals Postgres.
	waitReady(t, "http://"+widgetAddr+"/readyz", 60*time.Second)
	sample := []rowKey{{"influ_hot", ""}, {"influ_hot", "spring"}}
	for k := range want {
		if len(sample) >= 8 {
			break
		}
		sample = append(sample, k)
	}
	for _, k := range sample {
		path := "acme/product/" + k.influencer
		if k.campaign != "" {
			path += "/" + k.campaign
		}
		var pgTotal int64
		q := `SELECT coalesce(sum(counted), 0) FROM daily_stats WHERE customer_code = 'acme' AND influencer_id = $1`
		args := []any{k.influencer}
		if k.campaign != "" {
			q += ` AND campaign = $2`
			args = append(args, k.campaign)
		}
		if err := conn.QueryRow(ctx, q, args...).Scan(&pgTotal); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(widgetAddr)
		var p int
		fmt.Sscan(port, &p)
		if total := widgetTotal(t, p, path); total != pgTotal {
			t.Errorf("widget %s shows %d, Postgres %d", path, total, pgTotal)
		}
	}

	// No raw IP anywhere: topics, tables, logs, state directories.
	ips := map[string]bool{}
	for _, g := range groups {
		for _, pb := range g {
			ips[pb.ip] = true
		}
	}
	checkNoIP := func(where string, b []byte) {
		for ip := range ips {
			if bytes.Contains(b, []byte(ip)) {
				t.Errorf("raw IP %s found in %s", ip, where)
				return
			}
		}
	}
	dump, err := exec.Command("pg_dump", "-a", dbURL).Output()
	if err == nil {
		checkNoIP("the Postgres dump", dump)
	} else {
		var all bytes.Buffer
		for _, table := range []string{"events", "daily_stats"} {
			rows, err := conn.Query(ctx, "SELECT t::text FROM "+table+" t")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				rows.Scan(&s)
				all.WriteString(s)
			}
			rows.Close()
		}
		checkNoIP("the Postgres tables", all.Bytes())
	}
	for _, rec := range readAllTopics(t, brokerAddr, prefix) {
		checkNoIP("topic "+rec.Topic, append(append([]byte{}, rec.Key...), rec.Value...))
		for _, id := range missingIDs { // where did a lost postback get to?
			if bytes.Contains(rec.Value, []byte(id)) {
				t.Logf("missing postback %s is in %s partition %d offset %d (%s)", id, rec.Topic, rec.Partition, rec.Offset, rec.Timestamp.Format(time.RFC3339Nano))
			}
		}
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, string(filepath.Separator)+"postgres"+string(filepath.Separator)) {
			return nil // PostgreSQL's own files are covered by the dump
		}
		if b, err := os.ReadFile(path); err == nil {
			checkNoIP(path, b)
		}
		return nil
	})

	// The report.
	var r strings.Builder
	fmt.Fprintf(&r, "chaos report: %d postbacks sent (%d requests with retries), %d acknowledged (202), %d stored without an answer\n",
		fed.Load(), sent.Load(), wantAcked, len(extras))
	var reasons []string
	for k, v := range refused {
		reasons = append(reasons, fmt.Sprintf("  refused %5d: %s", v, k))
	}
	sort.Strings(reasons)
	for _, s := range reasons {
		fmt.Fprintln(&r, s)
	}
	for _, k := range kills {
		fmt.Fprintf(&r, "  SIGKILL %-9s down %5v, then Postgres counted the %d postbacks acknowledged so far within %v\n",
			k.name, k.down.Round(10*time.Millisecond), k.ackedAtRun, k.catchUp.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&r, "  events rows: %d for %d acknowledged postbacks (%d missing); daily_stats rows differing from the reference: %d of %d (%d where a request lost its answer compared on their total)\n",
		len(seen), len(ackedIDs), missing, bad, len(want), len(reordered))
	t.Log("\n" + r.String())
	if dir := os.Getenv("STREAMTOOLS_ARTIFACTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "chaos-report.txt"), []byte(r.String()), 0o644)
	}
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v (last: %v)", url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAllTopics reads every record of every topic with prefix.
func readAllTopics(t *testing.T, addr, prefix string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := kadm.NewClient(adm).ListStartOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]int64{}
	offs := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if !strings.HasPrefix(o.Topic, prefix) || o.Offset == 0 || o.Err != nil {
			return
		}
		if st, ok := starts.Lookup(o.Topic, o.Partition); ok && st.Offset >= o.Offset {
			return // emptied by retention or compaction
		}
		if want[o.Topic] == nil {
			want[o.Topic], offs[o.Topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		}
		want[o.Topic][o.Partition] = o.Offset
		offs[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
	})
	if len(want) == 0 {
		t.Fatal("no topics to read")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(offs))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	left := 0
	for _, p := range want {
		left += len(p)
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the topics: %v", errors.Join(ctx.Err()))
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if end, ok := want[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(want[r.Topic], r.Partition)
				left--
			}
		})
	}
	return out
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
