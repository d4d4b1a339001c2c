package ingest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtools/streamtools/schemas"
)

// dayCache answers schemas.DayOf(now, loc) from the bounds of the current
// day of each location, instead of converting and formatting the time on
// every request. It gives the same answer as DayOf at every instant (the
// bounds are checked against DayOf before they are cached).
type dayCache struct {
	m sync.Map // *time.Location -> *atomic.Pointer[dayBounds]
}

type dayBounds struct {
	day        string
	start, end int64 // unix nanoseconds, [start, end)
}

func (c *dayCache) of(now time.Time, loc *time.Location) string {
	ns := now.UnixNano()
	v, ok := c.m.Load(loc)
	if !ok {
		v, _ = c.m.LoadOrStore(loc, new(atomic.Pointer[dayBounds]))
	}
	p := v.(*atomic.Pointer[dayBounds])
	if b := p.Load(); b != nil && ns >= b.start && ns < b.end {
		return b.day
	}
	day := schemas.DayOf(now, loc)
	local := now.In(loc)
	y, m, d := local.Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, loc)
	end := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	// Where midnight does not exist (a DST jump at 00:00), time.Date may
	// land elsewhere: cache only bounds that DayOf confirms.
	if !start.After(now) && end.After(now) &&
		schemas.DayOf(start, loc) == day && schemas.DayOf(end.Add(-time.Nanosecond), loc) == day &&
		schemas.DayOf(end, loc) != day {
		p.Store(&dayBounds{day: day, start: start.UnixNano(), end: end.UnixNano()})
	}
	return day
}
