// Package statsinfluencer is the goka group that keeps absolute counts per
// influencer (customer, product, influencer) from the events topic. Its
// table changelog is what widgetd and the sink read.
package statsinfluencer

import (
	"github.com/lovoo/goka"

	"github.com/streamtools/streamtools/processors/internal/statscore"
	"github.com/streamtools/streamtools/schemas"
)

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupStatsInfluencer)) }

// Table is the changelog topic of the group's table (schemas.Stats rows
// keyed by InfluencerKey).
func Table(n schemas.Names) goka.Table { return goka.Table(n.TableTopic(string(Group(n)))) }

// Config configures the processor.
type Config = statscore.Config

// Processor is a running group member.
type Processor = statscore.Processor

// New builds the processor; the events topic must exist.
func New(cfg Config) (*Processor, error) {
	return statscore.New(statscore.Spec{
		Group: Group(cfg.Names),
		Input: goka.Stream(cfg.Names.Events()),
		Key: func(ev *schemas.Event) string {
			return schemas.InfluencerKey(ev.CustomerCode, ev.Product, ev.InfluencerID)
		},
		Identity: func(ev *schemas.Event) schemas.Stats {
			return schemas.Stats{CustomerCode: ev.CustomerCode, Product: ev.Product, InfluencerID: ev.InfluencerID}
		},
	}, cfg)
}
