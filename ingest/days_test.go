package ingest

import (
	"testing"
	"time"

	"github.com/streamtools/streamtools/schemas"
)

// TestDayCache checks the cached day against schemas.DayOf every 7 minutes
// over two years in zones with DST changes at 00:00, 02:00 and none.
func TestDayCache(t *testing.T) {
	var c dayCache
	for _, tz := range []string{"Europe/Paris", "America/Sao_Paulo", "America/Havana", "Asia/Tehran", "Pacific/Kiritimati", "UTC"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for at := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC); at.Year() < 2018; at = at.Add(7 * time.Minute) {
			if got, want := c.of(at, loc), schemas.DayOf(at, loc); got != want {
				t.Fatalf("%s at %v: cached day %s, DayOf %s", tz, at, got, want)
			}
		}
	}
}
