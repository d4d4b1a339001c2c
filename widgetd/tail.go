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

// tailer reads the stats table's changelog (schemas.Names.StatsTable) from
// the start, without a consumer group, into the hub.
type tailer struct {
	s     *Server
	cl    *kgo.Client
	topic string
}

func newTailer(s *Server) (*tailer, error) {
	topic := s.cfg.Names.StatsTable()
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The table appears when the processors first start: look for it
		// every second rather than every 5 s.
		kgo.MetadataMinAge(time.Second),
		kgo.MetadataMaxAge(30 * time.Second),
		kgo.FetchMaxWait(time.Second),
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("widgetd: creating kafka client: %w", err)
	}
	return &tailer{s: s, cl: cl, topic: topic}, nil
}

// endOffsets lists the end offset of every non-empty partition of the
// table: reading up to them is "caught up". A table that does not exist
// yet is empty, and so is a partition whose records were all deleted
// (start offset at its end).
func (t *tailer) endOffsets(ctx context.Context) (map[int32]int64, error) {
	for {
		adm := kadm.NewClient(t.cl)
		ends, err := t.listOffsets(adm.ListEndOffsets(ctx, t.topic))
		var starts map[int32]int64
		if err == nil {
			starts, err = t.listOffsets(adm.ListStartOffsets(ctx, t.topic))
		}
		if err == nil {
			for p, end := range ends {
				if end <= 0 || starts[p] >= end {
					delete(ends, p)
				}
			}
			return ends, nil
		}
		t.s.log.Warn("listing the offsets of the stats table; retrying", "topic", t.topic, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// listOffsets turns a listing into offsets by partition; a topic that
// does not exist has none.
func (t *tailer) listOffsets(listed kadm.ListedOffsets, err error) (map[int32]int64, error) {
	if err != nil {
		return nil, err
	}
	offsets := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			err = o.Err
		default:
			offsets[o.Partition] = o.Offset
		}
	})
	return offsets, err
}

// run tails until ctx is done, then closes the client.
func (t *tailer) run(ctx context.Context) error {
	defer t.cl.Close()
	ends, err := t.endOffsets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("widgetd: listing the end offsets of the stats table: %w", err)
	}
	t.s.metrics.pendingPartitions.Set(float64(len(ends)))
	if len(ends) == 0 {
		t.s.caughtUp()
	}
	records := t.s.metrics.records.WithLabelValues("stats")
	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.s.log.Warn("reading the stats table", "topic", topic, "partition", p, "err", err)
		})
		var ups []dayUpdate
		done := false
		fs.EachRecord(func(rec *kgo.Record) {
			records.Inc()
			if u, ok := t.decode(rec); ok {
				ups = append(ups, u)
			}
			if end, ok := ends[rec.Partition]; ok && rec.Offset+1 >= end {
				delete(ends, rec.Partition)
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

// decode turns a changelog record into a day row update. The key
// (schemas.DayKey) names the row, also for a tombstone (nil value). A
// record that does not decode is logged and skipped: the processors own
// the table, widgetd only shows it.
func (t *tailer) decode(rec *kgo.Record) (dayUpdate, bool) {
	parts, err := schemas.SplitKey(string(rec.Key))
	if err == nil && len(parts) != 5 {
		err = fmt.Errorf("the key has %d parts, not 5 (customer/product/influencer/campaign/day)", len(parts))
	}
	if err != nil {
		t.skip(rec, "skipping a stats row with a bad key", err)
		return dayUpdate{}, false
	}
	u := dayUpdate{infl: schemas.InfluencerKey(parts[0], parts[1], parts[2]), campaign: parts[3], day: parts[4]}
	if rec.Value == nil {
		u.deleted = true
		return u, true
	}
	v, err := schemas.StatsCodec.Decode(rec.Value)
	if err != nil {
		t.skip(rec, "skipping an undecodable stats row", err)
		return u, false
	}
	st := v.(*schemas.Stats)
	if st.V > schemas.StatsVersion {
		t.skip(rec, "skipping a stats row of a newer schema version; upgrade widgetd", fmt.Errorf("version %d, widgetd knows %d", st.V, schemas.StatsVersion))
		return u, false
	}
	counted := make(map[string]int64, len(st.ByType))
	for et, c := range st.ByType {
		counted[et] = c.Counted
	}
	u.row = newDayRow(counted, st.UpdatedAt)
	return u, true
}

func (t *tailer) skip(rec *kgo.Record, msg string, err error) {
	t.s.metrics.badRecords.Inc()
	t.s.log.Warn(msg, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
}
