package widgetd

import (
	"slices"
	"strings"
	"time"
	"unique"
)

// The stats table has one row per customer/product/influencer/campaign/day
// (schemas.DayKey). A widget shows the totals of an influencer (every
// campaign and day) or of one of its campaigns (every day), so widgetd sums
// the day rows as it reads them.
//
// Memory: per day row widgetd keeps only what it needs to take the row's
// contribution back out when the row changes or is deleted: its counted
// events per event type and its updated_at (dayRow), under its day in its
// campaign. Day and event-type strings are interned, so a day row costs
// its map entry, a small slice of (type, count) pairs and a timestamp.
// Per influencer and per campaign it keeps running sums (totals): a row
// update subtracts the row's previous counts and adds the new ones (rows
// carry absolute values, so an update replaces, never adds); a tombstone
// subtracts them. An aggregate whose last row is deleted is dropped.
//
// updated_at of an aggregate is the latest updated_at of its rows, kept
// exact: it only rises on an update, and when the row that held the
// latest value is deleted (or moves back in time), the campaign recomputes
// it over its days and the influencer over its campaigns' values. Both are
// rare (old days are what gets deleted) and bounded by one campaign's days
// plus one influencer's campaigns.

// aggID names what a widget shows: the totals of an influencer, or of one
// of its campaigns.
type aggID struct {
	infl        string // schemas.InfluencerKey
	campaign    string // with hasCampaign
	hasCampaign bool
}

// typeCount is the counted events of one event type in a day row.
type typeCount struct {
	et string
	n  int64
}

// dayRow is what widgetd keeps of a stats row: counted events by event
// type (duplicates never reach a widget) and when the processors last
// changed it.
type dayRow struct {
	counts  []typeCount // only types with counted events, by type
	updated time.Time
}

// newDayRow builds a day row from a decoded record's counted events.
func newDayRow(counted map[string]int64, updated time.Time) dayRow {
	r := dayRow{updated: updated}
	for et, n := range counted {
		if n > 0 {
			if r.counts == nil {
				r.counts = make([]typeCount, 0, len(counted))
			}
			r.counts = append(r.counts, typeCount{et: intern(et), n: n})
		}
	}
	slices.SortFunc(r.counts, func(a, b typeCount) int { return strings.Compare(a.et, b.et) })
	return r
}

// intern shares the memory of strings that repeat over many rows (days,
// event types).
func intern(s string) string { return unique.Make(s).Value() }

// dayUpdate is one changelog record: a day row, or its deletion.
type dayUpdate struct {
	infl     string // schemas.InfluencerKey
	campaign string
	day      string
	deleted  bool   // a tombstone
	row      dayRow // unless deleted
}

// totals are the running sums of an influencer or a campaign.
type totals struct {
	counts  map[string]int64 // counted events by type; only types above 0
	updated time.Time        // the latest updated_at of its rows
}

// add adds (sign 1) or subtracts (sign -1) a row's counts.
func (t *totals) add(cs []typeCount, sign int64) {
	for _, c := range cs {
		n := t.counts[c.et] + sign*c.n
		if n <= 0 {
			delete(t.counts, c.et)
			continue
		}
		if t.counts == nil {
			t.counts = map[string]int64{}
		}
		t.counts[c.et] = n
	}
}

type campaignTotals struct {
	totals
	days map[string]dayRow // by day
}

func (c *campaignTotals) latest() time.Time {
	var l time.Time
	for _, r := range c.days {
		if r.updated.After(l) {
			l = r.updated
		}
	}
	return l
}

type influencerTotals struct {
	totals
	campaigns map[string]*campaignTotals // by campaign ("" when absent)
}

func (i *influencerTotals) latest() time.Time {
	var l time.Time
	for _, c := range i.campaigns {
		if c.updated.After(l) {
			l = c.updated
		}
	}
	return l
}

// aggregates holds every day row and the sums over them. It is not safe
// for concurrent use; the hub guards it.
type aggregates struct {
	infl map[string]*influencerTotals // by schemas.InfluencerKey
	rows int                          // day rows held
}

func newAggregates() *aggregates {
	return &aggregates{infl: map[string]*influencerTotals{}}
}

// totals returns the sums id shows, nil when it has no row.
func (a *aggregates) totals(id aggID) *totals {
	i := a.infl[id.infl]
	if i == nil {
		return nil
	}
	if !id.hasCampaign {
		return &i.totals
	}
	if c := i.campaigns[id.campaign]; c != nil {
		return &c.totals
	}
	return nil
}

// apply applies one changelog record and reports whether anything changed.
func (a *aggregates) apply(u dayUpdate) bool {
	i := a.infl[u.infl]
	var c *campaignTotals
	if i != nil {
		c = i.campaigns[u.campaign]
	}
	var old dayRow
	had := false
	if c != nil {
		old, had = c.days[u.day]
	}
	if u.deleted {
		if !had {
			return false // a tombstone of a row widgetd never held
		}
		c.add(old.counts, -1)
		i.add(old.counts, -1)
		delete(c.days, u.day)
		a.rows--
		campLatest := c.updated
		if len(c.days) == 0 {
			delete(i.campaigns, u.campaign)
		} else if !old.updated.Before(c.updated) {
			c.updated = c.latest() // the deleted row held the latest
		}
		if len(i.campaigns) == 0 {
			delete(a.infl, u.infl)
		} else if (len(c.days) == 0 || c.updated.Before(campLatest)) && !campLatest.Before(i.updated) {
			i.updated = i.latest()
		}
		return true
	}
	if i == nil {
		i = &influencerTotals{campaigns: map[string]*campaignTotals{}}
		a.infl[u.infl] = i
	}
	if c == nil {
		c = &campaignTotals{days: map[string]dayRow{}}
		i.campaigns[u.campaign] = c
	}
	if had {
		c.add(old.counts, -1)
		i.add(old.counts, -1)
	} else {
		a.rows++
		u.day = intern(u.day)
	}
	c.add(u.row.counts, 1)
	i.add(u.row.counts, 1)
	c.days[u.day] = u.row
	campLatest := c.updated
	switch {
	case u.row.updated.After(c.updated):
		c.updated = u.row.updated
	case had && u.row.updated.Before(old.updated) && !old.updated.Before(c.updated):
		c.updated = c.latest() // the row that held the latest moved back
	}
	switch {
	case c.updated.After(i.updated):
		i.updated = c.updated
	case c.updated.Before(campLatest) && !campLatest.Before(i.updated):
		i.updated = i.latest()
	}
	return true
}
