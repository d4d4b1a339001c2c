// Package statscampaign is the goka group that keeps absolute counts per
// campaign (customer, product, influencer, campaign; campaign "" when
// absent) from the events-by-campaign topic. Its table changelog is what
// widgetd and the sink read.
package statscampaign

import (
	"github.com/lovoo/goka"

	"github.com/streamtools/streamtools/processors/internal/statscore"
	"github.com/streamtools/streamtools/schemas"
)

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupStatsCampaign)) }

// Table is the changelog topic of the group's table (schemas.Stats rows
// keyed by CampaignKey).
func Table(n schemas.Names) goka.Table { return goka.Table(n.TableTopic(string(Group(n)))) }

// Config configures the processor.
type Config = statscore.Config

// Processor is a running group member.
type Processor = statscore.Processor

// New builds the processor; the EventsByCampaign topic must exist.
func New(cfg Config) (*Processor, error) {
	return statscore.New(statscore.Spec{
		Group: Group(cfg.Names),
		Input: goka.Stream(cfg.Names.EventsByCampaign()),
		Key: func(ev *schemas.Event) string {
			return schemas.CampaignKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign)
		},
		Identity: func(ev *schemas.Event) schemas.Stats {
			return schemas.Stats{CustomerCode: ev.CustomerCode, Product: ev.Product, InfluencerID: ev.InfluencerID, Campaign: ev.Campaign}
		},
	}, cfg)
}
