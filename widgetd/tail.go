package widgetd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// tailer reads both stats changelogs from the start, without a consumer
// group, into the hub.
type tailer struct {
	s      *Server
	cl     *kgo.Client
	tables map[string]table // by topic
}

func newTailer(s *Server) (*tailer, error) {
	infl := s.cfg.Names.TableTopic(s.cfg.Names.Group(schemas.GroupStatsInfluencer))
	camp := s.cfg.Names.TableTopic(s.cfg.Names.Group(schemas.GroupStatsCampaign))
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumeTopics(infl, camp),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The tables appear when the processors first start: look for
		// them every second rather than every 5 s.
		kgo.MetadataMinAge(time.Second),
		kgo.MetadataMaxAge(30 * time.Second),
		kgo.FetchMaxWait(time.Second),
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("widgetd: creating kafka client: %w", err)
	}
	return &tailer{s: s, cl: cl, tables: map[string]table{infl: tableInfluencer, camp: tableCampaign}}, nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// endOffsets lists the end offset of every non-empty partition of both
// tables: reading up to them is "caught up". A table that does not exist
// yet is empty.
func (t *tailer) endOffsets(ctx context.Context) (map[topicPartition]int64, error) {
	topics := make([]string, 0, len(t.tables))
	for topic := range t.tables {
		topics = append(topics, topic)
	}
	for {
		listed, err := kadm.NewClient(t.cl).ListEndOffsets(ctx, topics...)
		if err == nil {
			ends := map[topicPartition]int64{}
			var perr error
			listed.Each(func(o kadm.ListedOffset) {
				switch {
				case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
				case o.Err != nil:
					perr = o.Err
				case o.Offset > 0:
					ends[topicPartition{o.Topic, o.Partition}] = o.Offset
				}
			})
			if perr == nil {
				return ends, nil
			}
			err = perr
		}
		t.s.log.Warn("listing the end offsets of the stats tables; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// run tails until ctx is done, then closes the client.
func (t *tailer) run(ctx context.Context) error {
	defer t.cl.Close()
	ends, err := t.endOffsets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("widgetd: listing the end offsets of the stats tables: %w", err)
	}
	t.s.metrics.pendingPartitions.Set(float64(len(ends)))
	if len(ends) == 0 {
		t.s.caughtUp()
	}
	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.s.log.Warn("reading a stats table", "topic", topic, "partition", p, "err", err)
		})
		var ups []rowUpdate
		done := false
		fs.EachRecord(func(rec *kgo.Record) {
			tb := t.tables[rec.Topic]
			t.s.metrics.records.WithLabelValues(tableName(tb)).Inc()
			if u, ok := t.decode(tb, rec); ok {
				ups = append(ups, u)
			}
			tp := topicPartition{rec.Topic, rec.Partition}
			if end, ok := ends[tp]; ok && rec.Offset+1 >= end {
				delete(ends, tp)
				t.s.metrics.pendingPartitions.Set(float64(len(ends)))
				done = len(ends) == 0
			}
		})
		t.s.hub.apply(ups)
		if done {
			t.s.caughtUp() // only now does the hub hold every row
		}
	}
}

func tableName(tb table) string {
	if tb == tableCampaign {
		return "campaign"
	}
	return "influencer"
}

// decode turns a changelog record into a row update. A record that does
// not decode is logged and skipped: the processors own the table, widgetd
// only shows it.
func (t *tailer) decode(tb table, rec *kgo.Record) (rowUpdate, bool) {
	u := rowUpdate{id: rowID{table: tb, key: string(rec.Key)}}
	if rec.Value == nil {
		return u, true
	}
	v, err := schemas.StatsCodec.Decode(rec.Value)
	if err != nil {
		t.s.metrics.badRecords.Inc()
		t.s.log.Warn("skipping an undecodable stats row", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return u, false
	}
	st := v.(*schemas.Stats)
	if st.V > schemas.StatsVersion {
		t.s.metrics.badRecords.Inc()
		t.s.log.Warn("skipping a stats row of a newer schema version; upgrade widgetd", "topic", rec.Topic, "offset", rec.Offset, "v", st.V)
		return u, false
	}
	u.counts = make(map[string]int64, len(st.ByType))
	for et, c := range st.ByType {
		if c.Counted > 0 {
			u.counts[et] = c.Counted
		}
	}
	u.updated = st.UpdatedAt
	return u, true
}
