package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// Fuzz targets of the record codecs that the processors, the sink and
// widgetd decode from Kafka: any producer (kcat, an older version) may
// write those topics, so a codec must take any bytes. The property: what
// decodes without error re-encodes to valid JSON that decodes to an equal
// value and re-encodes to the same bytes (the stats processor's row cache
// relies on it: equal bytes are an equal row).
//
// One asymmetry of go-json is allowed for: it keeps invalid UTF-8 in a
// decoded string as is but writes U+FFFD for it, as encoding/json does,
// so a value holding invalid UTF-8 changes once; from then on it must be
// stable.
//
// Inputs that broke it against position.go of 5d7ae61, seeds once
// position.go refuses them: the event {"src":"\u00013:1"} re-encoded its
// src as "\x013:1", invalid JSON (so did claim requests and rows, and
// stats rows whose applied marks come from such a src); the stats rows
// {"applied":{"&0":0}} (go-json HTML-escapes the key of MarshalJSON's
// output to "\u00260", which UnmarshalJSON does not unescape) and
// "{\"applied\":{\"\xc33\":1}}" re-encoded to rows that do not decode.

func FuzzPostbackCodec(f *testing.F) {
	for _, pb := range fuzzSeedPostbacks() {
		f.Add(fuzzJSON(f, pb))
	}
	for _, s := range []string{
		`{"v":1,"id":"x","received_at":"2026-03-01T00:00:00+01:00","customer_code":"c","day":"2026-02-29","influencer_id":"i","product":"p","INFLUENCER_ID":"j"}`,
		`{"v":2,"received_at":"0000-01-01T00:00:00-23:59","anticheat":"true"}`, `{}`, `null`, `{"id":"a\ud800b\u00e9"}`, "{\"id\":\"a\xffb\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, PostbackCodec, data) })
}

func FuzzEventCodec(f *testing.F) {
	for _, pb := range fuzzSeedPostbacks() {
		f.Add(fuzzJSON(f, NewEvent(&pb, Position{Lane: 'p', Partition: 2, Offset: 41}, Position{Lane: 'q', Partition: 5, Offset: 9}, ClaimVisitor)))
		f.Add(fuzzJSON(f, NewEvent(&pb, Position{Lane: 'p', Partition: 0, Offset: 0}, Position{Lane: 'r', Partition: 0, Offset: 0}, 0)))
	}
	for _, s := range []string{
		`{"v":1,"id":"x","src":"c3:1234","seq":-1,"seq_partition":2147483647,"verdict":"duplicate","reason":"duplicate_event_id"}`,
		`{"src":""}`, `{"src":"x:1"}`, `{"src":"\u00ff3:1"}`, `{"src":null}`, `{"src":5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, EventCodec, data) })
}

func FuzzStatsCodec(f *testing.F) {
	for _, s := range fuzzSeedStats() {
		f.Add(fuzzJSON(f, s))
	}
	for _, s := range []string{
		`{"v":2,"by_type":{"reg":{"counted":3,"duplicates":{}}},"applied":{}}`, `{"by_type":null,"applied":null}`,
		`{"applied":{"c3":1,}}`, `{"applied":{"c3":01}}`, `{"applied":{"c3":5,"c3":2}}`, `{"applied":[]}`,
		`{"by_type":{"a":{"counted":1},"a":{"counted":2}}}`, `{"updated_at":"2026-03-01T12:00:00.123456789+05:45"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, StatsCodec, data) })
}

func FuzzClaimRowCodec(f *testing.F) {
	pbs := fuzzSeedPostbacks()
	for i, pb := range pbs {
		row := ClaimRow{V: ClaimRowVersion, Owner: pb.ID, Day: pb.Day, ClaimedAt: pb.ReceivedAt,
			Applied: Watermarks{{Lane: 'q', Partition: 1, Offset: 7}, {Lane: 'p', Partition: 3, Offset: 100}}}
		if i%2 == 0 {
			row.Last = &ClaimDecision{Postback: pb, PostbackPos: Position{Lane: 'p', Partition: 3, Offset: 100}, Got: ClaimVisitor | ClaimEventID, Dup: ClaimEventID}
		}
		f.Add(fuzzJSON(f, row))
	}
	for _, s := range []string{`{"v":1,"owner":"x","last":null}`, `{"last":{"got":255,"dup":0}}`, `{"last":{"got":256}}`, `{"applied":{"p0":1},"last":{"postback_pos":"p0:1"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, ClaimRowCodec, data) })
}

func FuzzClaimRequestCodec(f *testing.F) {
	for _, pb := range fuzzSeedPostbacks() {
		f.Add(fuzzJSON(f, ClaimRequest{V: ClaimRequestVersion, Src: Position{Lane: 'q', Partition: 4, Offset: 12},
			Got: ClaimVisitor, Postback: pb, PostbackPos: Position{Lane: 'p', Partition: 1, Offset: 77}}))
	}
	for _, s := range []string{`{"v":1,"src":"r0:0","got":1,"postback":{},"postback_pos":""}`, `{"got":-1}`, `{"postback":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, ClaimRequestCodec, data) })
}

// The tenant records: the registry of the edge, widgetd and the dashboard
// decodes the customers and access-keys topics, the edge the salts topic.

func FuzzCustomerCodec(f *testing.F) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	f.Add(fuzzJSON(f, Customer{V: CustomerVersion, Code: "default", Name: "Default brand", TimeZone: "Europe/Paris", AntiCheat: true, RateLimit: 500,
		Products:  map[string]Product{"product": {Code: "product", Title: "Sign-ups", EventTypes: []string{"reg", "dl"}, Goal: 100}, "other": {Code: "other"}},
		UpdatedAt: at}))
	f.Add(fuzzJSON(f, Customer{V: CustomerVersion, Code: "café", TimeZone: "UTC", UpdatedAt: at}))
	for _, s := range []string{`{"v":1,"code":"c","products":{}}`, `{"products":{"p":{"event_types":null,"goal":-1}}}`, `{"products":null,"rate_limit":1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, CustomerCodec, data) })
}

func FuzzAccessKeyCodec(f *testing.F) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	revoked := at.Add(time.Hour)
	f.Add(fuzzJSON(f, AccessKey{V: AccessKeyVersion, Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", CustomerCode: "default", Label: "server 1", CreatedAt: at}))
	f.Add(fuzzJSON(f, AccessKey{V: AccessKeyVersion, Hash: "00", CustomerCode: "c", CreatedAt: at, RevokedAt: &revoked}))
	for _, s := range []string{`{"revoked_at":null}`, `{"revoked_at":"0001-01-01T00:00:00Z"}`, `{"created_at":"2026-03-01T09:00:00.5-03:30"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, AccessKeyCodec, data) })
}

func FuzzSaltCodec(f *testing.F) {
	salt := make([]byte, 32)
	for i := range salt {
		salt[i] = byte(i * 37)
	}
	f.Add(fuzzJSON(f, Salt{V: SaltVersion, Day: "2026-03-01", Salt: salt, CreatedAt: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)}))
	for _, s := range []string{`{"salt":null}`, `{"salt":""}`, `{"salt":"AAEC"}`, `{"salt":"AAE="}`, `{"salt":"!!"}`, `{"salt":[1,2]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheckCodec(t, SaltCodec, data) })
}

// fuzzCheckCodec decodes data with c and checks the round trip of what it
// decodes.
func fuzzCheckCodec[T any](t *testing.T, c Codec[T], data []byte) {
	t.Helper()
	v1, err := c.Decode(data)
	if err != nil {
		return
	}
	b1, err := c.Encode(v1)
	if err != nil {
		t.Fatalf("%q decodes to %+v, which does not encode: %v", data, v1, err)
	}
	if !json.Valid(b1) {
		t.Fatalf("%q decodes to %+v, which encodes to invalid JSON %q", data, v1, b1)
	}
	v2, err := c.Decode(b1)
	if err != nil {
		t.Fatalf("%q decodes to %+v, whose encoding %q does not decode: %v", data, v1, b1, err)
	}
	b2, err := c.Encode(v2)
	if err != nil {
		t.Fatalf("%q: the decoded encoding %+v does not encode: %v", b1, v2, err)
	}
	if !fuzzValidUTF8(reflect.ValueOf(v1)) {
		// go-json kept invalid UTF-8 that the encoding replaced: from here
		// on the value must be stable.
		v3, err := c.Decode(b2)
		if err != nil {
			t.Fatalf("%q does not decode: %v", b2, err)
		}
		if b3, err := c.Encode(v3); err != nil || !bytes.Equal(b3, b2) {
			t.Fatalf("%q (from %q) re-encodes to %q, %v", b2, data, b3, err)
		}
		return
	}
	if d := fuzzDiff(reflect.ValueOf(v1), reflect.ValueOf(v2), "value"); d != "" {
		t.Fatalf("%q decodes to\n%+v\nwhich encodes to %q, which decodes to\n%+v\n%s", data, v1, b1, v2, d)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("encoding is not stable: %q decodes to a value that encodes to %q, then %q", data, b1, b2)
	}
}

var fuzzTimeType = reflect.TypeFor[time.Time]()

// fuzzDiff compares decoded records: times by instant and zone offset, nil and
// empty maps and slices alike (omitempty drops an empty map). It returns
// the first difference, or "".
func fuzzDiff(a, b reflect.Value, path string) string {
	if a.Type() == fuzzTimeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		_, oa := ta.Zone()
		_, ob := tb.Zone()
		if !ta.Equal(tb) || oa != ob {
			return fmt.Sprintf("%s: %v != %v", path, ta, tb)
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: nil %v != nil %v", path, a.IsNil(), b.IsNil())
			}
			return ""
		}
		return fuzzDiff(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := range a.NumField() {
			if d := fuzzDiff(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d != %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := fuzzDiff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d entries != %d", path, a.Len(), b.Len())
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() {
				return fmt.Sprintf("%s: key %q missing", path, k)
			}
			if d := fuzzDiff(a.MapIndex(k), bv, fmt.Sprintf("%s[%q]", path, k)); d != "" {
				return d
			}
		}
		return ""
	default:
		if a.Interface() != b.Interface() {
			return fmt.Sprintf("%s: %#v != %#v", path, a.Interface(), b.Interface())
		}
		return ""
	}
}

// fuzzValidUTF8 reports whether every string in v, map keys included, is valid
// UTF-8.
func fuzzValidUTF8(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || fuzzValidUTF8(v.Elem())
	case reflect.Struct:
		if v.Type() == fuzzTimeType {
			return true
		}
		for i := range v.NumField() {
			if !fuzzValidUTF8(v.Field(i)) {
				return false
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if !fuzzValidUTF8(v.Index(i)) {
				return false
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if !fuzzValidUTF8(k) || !fuzzValidUTF8(v.MapIndex(k)) {
				return false
			}
		}
	}
	return true
}

func fuzzJSON(f *testing.F, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// fuzzSeedPostbacks are postbacks as the edge writes them.
func fuzzSeedPostbacks() []Postback {
	at := time.Date(2026, 3, 1, 12, 30, 15, 123456789, time.UTC)
	return []Postback{
		{V: 1, ID: "0190e2a1-7c4b-7d2e-9f00-000000000000", ReceivedAt: at, CustomerCode: "default", TimeZone: "Europe/Paris", Day: "2026-03-01", AntiCheat: true,
			Attrs: Attrs{InfluencerID: "influ_test", Product: "product", EventType: "reg", EventName: "registration", Campaign: "Jan2024_special_event",
				Medium: "Influencer", Source: "twitch", Country: "FR", EventID: "tx-1"},
			Visitor: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{V: 1, ID: "x", ReceivedAt: at.Add(-24 * time.Hour), CustomerCode: "café", TimeZone: "UTC", Day: "2026-02-28",
			Attrs: Attrs{InfluencerID: "in flu/é🎮", Product: "p", EventType: DefaultEventType, Campaign: "100%"}},
	}
}

// fuzzSeedStats are stats rows as the stats processor writes them.
func fuzzSeedStats() []Stats {
	at := time.Date(2026, 3, 1, 23, 59, 59, 999000000, time.UTC)
	return []Stats{
		{V: StatsVersion, CustomerCode: "default", Product: "product", InfluencerID: "influ_test", Campaign: "Jan2024_special_event", Day: "2026-03-01",
			ByType: map[string]Counts{
				"reg":      {Counted: 12, Duplicates: map[string]int64{ReasonDuplicateVisitor: 3, ReasonDuplicateEventID: 1}},
				"purchase": {Counted: 2},
			},
			Total: 14, Applied: Watermarks{{Lane: 'q', Partition: 0, Offset: 99}, {Lane: 'r', Partition: 3, Offset: 1234}}, UpdatedAt: at},
		{V: StatsVersion, CustomerCode: "c", Product: "p", InfluencerID: "i", Day: "2026-01-01", ByType: map[string]Counts{}, UpdatedAt: at.In(time.FixedZone("", 3600))},
	}
}
