// Package statsday is the goka group that keeps absolute counts per day
// (customer, product, influencer, campaign, day in the customer's time
// zone) from the events-by-day topic. Its table changelog is what the sink
// reads for daily_stats.
package statsday

import (
	"github.com/lovoo/goka"

	"github.com/streamtools/streamtools/processors/internal/statscore"
	"github.com/streamtools/streamtools/schemas"
)

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupStatsDay)) }

// Table is the changelog topic of the group's table (schemas.Stats rows
// keyed by DayKey).
func Table(n schemas.Names) goka.Table { return goka.Table(n.TableTopic(string(Group(n)))) }

// Config configures the processor.
type Config = statscore.Config

// Processor is a running group member.
type Processor = statscore.Processor

// New builds the processor; the EventsByDay topic must exist.
func New(cfg Config) (*Processor, error) {
	return statscore.New(statscore.Spec{
		Group: Group(cfg.Names),
		Input: goka.Stream(cfg.Names.EventsByDay()),
		Key: func(ev *schemas.Event) string {
			return schemas.DayKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign, ev.Day)
		},
		Identity: func(ev *schemas.Event) schemas.Stats {
			return schemas.Stats{CustomerCode: ev.CustomerCode, Product: ev.Product, InfluencerID: ev.InfluencerID, Campaign: ev.Campaign, Day: ev.Day}
		},
	}, cfg)
}
