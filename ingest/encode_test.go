package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/streamtools/streamtools/schemas"
)

func TestAppendPostbackMatchesStd(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	full := schemas.Postback{
		V: 1, ID: "0190e2a1-7c4b-7d2e-9f00-000000000000", ReceivedAt: time.Date(2026, 3, 29, 0, 59, 59, 123456789, time.UTC),
		CustomerCode: "default", TimeZone: paris.String(), Day: "2026-03-29", AntiCheat: true,
		Attrs: schemas.Attrs{
			InfluencerID: "influ \"test\" <&> \u2028\u2029 é🎮", Product: "product", EventType: "reg", EventName: "registration",
			Campaign: "Jan2024\\special\n\t\r\b\f\x01\x1f", Medium: "Influencer", Source: "twitch", Country: "FR", EventID: "tx-1",
		},
		Visitor: "ab",
	}
	for _, p := range []schemas.Postback{
		full,
		{V: 1, ID: "x", ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), CustomerCode: "c", TimeZone: "UTC", Day: "2026-01-01", Attrs: schemas.Attrs{InfluencerID: "i", Product: "p", EventType: "event"}},
		{V: 1, ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 1000, time.UTC), Attrs: schemas.Attrs{InfluencerID: "bad \xff utf8"}},
	} {
		want, err := json.Marshal(&p) // encoding/json, byte for byte
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPostback(nil, &p); !bytes.Equal(got, want) {
			t.Errorf("appendPostback:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendPostback(f *testing.F) {
	f.Add("influ_test", "Jan2024_special_event", "Mozilla <&>", int64(1700000000123456789))
	f.Fuzz(func(t *testing.T, a, b, c string, nanos int64) {
		p := schemas.Postback{
			V: 1, ID: a, ReceivedAt: time.Unix(0, nanos).UTC(), CustomerCode: b, TimeZone: c, Day: a,
			Attrs: schemas.Attrs{InfluencerID: a, Product: b, EventType: c, Campaign: a, Source: b, EventID: c},
		}
		want, err := json.Marshal(&p) // encoding/json, byte for byte
		if err != nil {
			return // times outside year 0..9999
		}
		if got := appendPostback(nil, &p); !bytes.Equal(got, want) {
			t.Fatalf("appendPostback:\n got %s\nwant %s", got, want)
		}
	})
}

func TestNewID(t *testing.T) {
	at := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := newID(at.Add(time.Duration(i) * time.Microsecond))
		if !uuidV7.MatchString(id) {
			t.Fatalf("%q is not a UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if id[:18] < prev[:min(18, len(prev))] {
			t.Fatalf("ids do not sort by time: %s after %s", id, prev)
		}
		prev = id
	}
	u, err := uuid.Parse(prev)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("uuid.Parse(%s): version %v variant %v err %v", prev, u.Version(), u.Variant(), err)
	}
	if sec, _ := u.Time().UnixTime(); sec != at.Unix() {
		t.Errorf("id time %d, want %d", sec, at.Unix())
	}
}

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
