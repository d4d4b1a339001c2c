package process

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// tail follows the stats changelog with a plain consumer, as widgetd
// and the sink do, and keeps the events applied per table.
type tail struct {
	cl      *kgo.Client
	topics  []string
	mu      sync.Mutex                  // guards the fields below
	rows    map[string]map[string]int64 // topic -> key -> events applied
	sums    map[string]int64
	first   time.Time
	measure bool
	lat     []time.Duration
	// events is the events topic; evLat the latency produced -> event
	// visible (the anticheat part of lat).
	events  string
	evLat   []time.Duration
	changed chan struct{}
}

func newTail(addr string, n schemas.Names) (*tail, error) {
	topics := []string{n.StatsTable()}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(append([]string{n.Events()}, topics...)...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation(),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	t := &tail{cl: cl, topics: topics, events: n.Events(), rows: map[string]map[string]int64{}, sums: map[string]int64{}, changed: make(chan struct{}, 1)}
	for _, tp := range topics {
		t.rows[tp] = map[string]int64{}
	}
	return t, nil
}

func (t *tail) close() { t.cl.Close() }

func (t *tail) run(ctx context.Context) {
	var s schemas.Stats
	var ev struct {
		ReceivedAt time.Time `json:"received_at"`
	}
	for ctx.Err() == nil {
		fs := t.cl.PollFetches(ctx)
		now := time.Now()
		t.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == t.events {
				if t.measure && json.Unmarshal(r.Value, &ev) == nil {
					t.evLat = append(t.evLat, now.Sub(ev.ReceivedAt))
				}
				return
			}
			if r.Value == nil || json.Unmarshal(r.Value, &s) != nil {
				return
			}
			var applied int64
			for _, c := range s.ByType {
				applied += c.Counted
				for _, d := range c.Duplicates {
					applied += d
				}
			}
			if t.first.IsZero() {
				t.first = now
			}
			rows := t.rows[r.Topic]
			t.sums[r.Topic] += applied - rows[string(r.Key)]
			rows[string(r.Key)] = applied
			if t.measure && r.Topic == t.topics[0] {
				t.lat = append(t.lat, now.Sub(s.UpdatedAt))
			}
			s = schemas.Stats{}
		})
		t.mu.Unlock()
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

func (t *tail) startLatency() {
	t.mu.Lock()
	t.measure = true
	t.mu.Unlock()
}

func (t *tail) latencies() (stats, events []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Duration(nil), t.lat...), append([]time.Duration(nil), t.evLat...)
}

// waitAll waits until every table applied want events, and returns when
// the first table change was seen.
func (t *tail) waitAll(ctx context.Context, want int64, done <-chan error) (time.Time, error) {
	for {
		t.mu.Lock()
		complete := true
		for _, tp := range t.topics {
			complete = complete && t.sums[tp] >= want
		}
		first := t.first
		t.mu.Unlock()
		if complete {
			return first, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case err := <-done:
			return time.Time{}, errors.Join(errors.New("the processors stopped"), err)
		case <-t.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}
