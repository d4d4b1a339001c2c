package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fillFields sets every JSON field of the struct v points to (embedded
// structs included) to a value of its own, unlike every other field's and
// never the zero value, so that an encoder that leaves a field out, or
// writes one field's value under another's name, differs from encoding/json.
// It fails the test on a kind it cannot fill: a new kind of field needs a
// case here and in AppendPostback.
func fillFields(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	for i := range v.NumField() {
		sf, f := v.Type().Field(i), v.Field(i)
		if !sf.IsExported() || sf.Tag.Get("json") == "-" {
			continue
		}
		if sf.Anonymous && f.Kind() == reflect.Struct {
			fillFields(t, f, n)
			continue
		}
		*n++
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2026, 3, 29, 1, 2, 3, *n*1000+7, time.UTC)))
		case f.Kind() == reflect.String:
			// A quote, a '<' and a non-ASCII letter: escaping is exercised
			// in every field, not only in the ones the table test picks.
			f.SetString(fmt.Sprintf("%s-%d \"<é>", sf.Name, *n))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(int64(100 + *n))
		default:
			t.Fatalf("Postback.%s is a %s: teach fillFields and AppendPostback to encode it", sf.Name, f.Type())
		}
	}
}

// TestAppendPostbackCoversEveryField fails when a field is added to
// Postback (or to Attrs) and not to AppendPostback: every field set, the
// fast encoder must write what encoding/json writes, and PostbackCodec
// must read back the same Postback.
func TestAppendPostbackCoversEveryField(t *testing.T) {
	var p Postback
	var n int
	fillFields(t, reflect.ValueOf(&p).Elem(), &n)

	want, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	got := AppendPostback(nil, &p)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendPostback does not write every field of Postback as encoding/json does (a field added to the struct and not to the encoder?):\n got %s\nwant %s", got, want)
	}
	back, err := PostbackCodec.Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.(*Postback), &p) {
		t.Fatalf("round trip through PostbackCodec:\n got %+v\nwant %+v", back, &p)
	}
	// Each field's value appears once: none was written under another
	// field's name as well as its own.
	for i := 1; i <= n; i++ {
		if c := strings.Count(string(got), fmt.Sprintf("-%d \\\"\\u003c", i)); c > 1 {
			t.Errorf("the value of field %d appears %d times in %s", i, c, got)
		}
	}
}

func TestAppendPostbackMatchesStd(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	full := Postback{
		V: 1, ID: "0190e2a1-7c4b-7d2e-9f00-000000000000", ReceivedAt: time.Date(2026, 3, 29, 0, 59, 59, 123456789, time.UTC),
		CustomerCode: "default", TimeZone: paris.String(), Day: "2026-03-29", AntiCheat: true,
		Attrs: Attrs{
			InfluencerID: "influ \"test\" <&> \u2028\u2029 é🎮", Product: "product", EventType: "reg", EventName: "registration",
			Campaign: "Jan2024\\special\n\t\r\b\f\x01\x1f", Medium: "Influencer", Source: "twitch", Country: "FR", EventID: "tx-1",
		},
		Visitor: "ab",
	}
	for _, p := range []Postback{
		full,
		{V: 1, ID: "x", ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), CustomerCode: "c", TimeZone: "UTC", Day: "2026-01-01", Attrs: Attrs{InfluencerID: "i", Product: "p", EventType: "event"}},
		{V: 1, ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 1000, time.UTC), Attrs: Attrs{InfluencerID: "bad \xff utf8"}},
	} {
		want, err := json.Marshal(&p) // encoding/json, byte for byte
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendPostback(nil, &p); !bytes.Equal(got, want) {
			t.Errorf("AppendPostback:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendPostback(f *testing.F) {
	f.Add("influ_test", "Jan2024_special_event", "Mozilla <&>", int64(1700000000123456789))
	f.Fuzz(func(t *testing.T, a, b, c string, nanos int64) {
		p := Postback{
			V: 1, ID: a, ReceivedAt: time.Unix(0, nanos).UTC(), CustomerCode: b, TimeZone: c, Day: a,
			Attrs: Attrs{InfluencerID: a, Product: b, EventType: c, Campaign: a, Source: b, EventID: c},
		}
		want, err := json.Marshal(&p) // encoding/json, byte for byte
		if err != nil {
			return // times outside year 0..9999
		}
		if got := AppendPostback(nil, &p); !bytes.Equal(got, want) {
			t.Fatalf("AppendPostback:\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkAppendPostback compares the fast encoder with encoding/json on
// a full postback: go test -bench AppendPostback ./schemas
func BenchmarkAppendPostback(b *testing.B) {
	p := Postback{
		V: 1, ID: "0190e2a1-7c4b-7d2e-9f00-000000000000", ReceivedAt: time.Date(2026, 3, 29, 0, 59, 59, 123456789, time.UTC),
		CustomerCode: "default", TimeZone: "Europe/Paris", Day: "2026-03-29", AntiCheat: true,
		Attrs: Attrs{InfluencerID: "influ_test", Product: "product", EventType: "reg", EventName: "registration",
			Campaign: "Jan2024_special_event", Medium: "Influencer", Source: "twitch", Country: "FR"},
		Visitor: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	b.Run("AppendPostback", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = AppendPostback(buf[:0], &p)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
