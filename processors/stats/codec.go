package stats

import (
	"sync"

	"github.com/streamtools/streamtools/schemas"
)

// rowCodec is schemas.StatsCodec with a cache of decoded rows keyed by
// their encoding. goka decodes a row from storage on every event of its
// key; a hot row (one influencer taking everything) would be decoded again
// for each of them, a third of the group's CPU. Encode remembers the row it
// encoded; Decode of the same bytes hands that row over (and forgets it, so
// no two callbacks ever share a row). Rows are content-addressed: equal
// bytes are an equal row, so a cached row is never stale. The cache is
// bounded by rowCacheEntries and only saves work.
type rowCodec struct {
	mu   sync.Mutex // guards rows
	rows map[string]*schemas.Stats
}

const rowCacheEntries = 4096

func newRowCodec() *rowCodec { return &rowCodec{rows: map[string]*schemas.Stats{}} }

func (c *rowCodec) Encode(value any) ([]byte, error) {
	b, err := schemas.StatsCodec.Encode(value)
	if err != nil {
		return nil, err
	}
	if row, ok := value.(*schemas.Stats); ok {
		c.mu.Lock()
		if len(c.rows) >= rowCacheEntries {
			for k := range c.rows { // drop an arbitrary entry
				delete(c.rows, k)
				break
			}
		}
		c.rows[string(b)] = row
		c.mu.Unlock()
	}
	return b, nil
}

func (c *rowCodec) Decode(data []byte) (any, error) {
	c.mu.Lock()
	row, ok := c.rows[string(data)]
	if ok {
		delete(c.rows, string(data))
	}
	c.mu.Unlock()
	if ok {
		return row, nil
	}
	return schemas.StatsCodec.Decode(data)
}
