package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/streamtools/streamtools/schemas"
)

// exampleBody is the postback of the README's Try it, as a brand sends it.
const exampleBody = `{
"influencer_id":"influ_test",
"product":"product",
"event_type":"reg",
"event_name":"registration",
"campaign": "Jan2024_special_event",
"medium": "Influencer",
"source": " twitch",
"ip": "132.244.133.122",
"country": "FR",
"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"
}`

func TestDecodeExample(t *testing.T) {
	var r Request
	if err := DecodeJSON([]byte(exampleBody), &r); err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Request{
		InfluencerID: "influ_test", Product: "product", EventType: "reg", EventName: "registration",
		Campaign: "Jan2024_special_event", Medium: "Influencer", Source: "twitch", IP: "132.244.133.122",
		Country: "FR", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
	}
	if r != want {
		t.Errorf("decoded %+v\nwant %+v", r, want)
	}
}

func TestValidate(t *testing.T) {
	ok := func() Request { return Request{InfluencerID: "i", Product: "p"} }
	tests := []struct {
		name  string
		edit  func(r *Request)
		field string // "" = valid
		check func(t *testing.T, r Request)
	}{
		{"minimal", func(r *Request) {}, "", func(t *testing.T, r Request) {
			if r.EventType != "event" {
				t.Errorf("event_type defaulted to %q, want event", r.EventType)
			}
		}},
		{"missing influencer_id", func(r *Request) { r.InfluencerID = "" }, "influencer_id", nil},
		{"blank influencer_id", func(r *Request) { r.InfluencerID = "   " }, "influencer_id", nil},
		{"missing product", func(r *Request) { r.Product = "" }, "product", nil},
		{"influencer_id too long", func(r *Request) { r.InfluencerID = strings.Repeat("x", MaxInfluencerID+1) }, "influencer_id", nil},
		{"influencer_id at the limit", func(r *Request) { r.InfluencerID = strings.Repeat("x", MaxInfluencerID) }, "", nil},
		{"product too long", func(r *Request) { r.Product = strings.Repeat("x", MaxProduct+1) }, "product", nil},
		{"event_type too long", func(r *Request) { r.EventType = strings.Repeat("x", MaxEventType+1) }, "event_type", nil},
		{"event_name too long", func(r *Request) { r.EventName = strings.Repeat("x", MaxEventName+1) }, "event_name", nil},
		{"campaign too long", func(r *Request) { r.Campaign = strings.Repeat("x", MaxCampaign+1) }, "campaign", nil},
		{"medium too long", func(r *Request) { r.Medium = strings.Repeat("x", MaxMedium+1) }, "medium", nil},
		{"source too long", func(r *Request) { r.Source = strings.Repeat("x", MaxSource+1) }, "source", nil},
		{"user_agent too long", func(r *Request) { r.UserAgent = strings.Repeat("x", MaxUserAgent+1) }, "user_agent", nil},
		{"event_id too long", func(r *Request) { r.EventID = strings.Repeat("x", MaxEventID+1) }, "event_id", nil},
		{"invalid UTF-8", func(r *Request) { r.Campaign = "ab\xffcd" }, "campaign", nil},
		{"control character", func(r *Request) { r.InfluencerID = "a\x00b" }, "influencer_id", nil},
		{"unicode is fine", func(r *Request) { r.InfluencerID = "ストリーマー 🎮" }, "", nil},
		{"right-to-left text is fine", func(r *Request) { r.Campaign = "حملة ١" }, "", nil},
		{"DEL", func(r *Request) { r.Product = "p\x7fq" }, "product", nil},
		{"C1 control NEL inside", func(r *Request) { r.InfluencerID = "a\u0085b" }, "influencer_id", nil},
		{"C1 control CSI", func(r *Request) { r.EventName = "a\u009b31mred" }, "event_name", nil},
		{"C1 control U+0080", func(r *Request) { r.EventID = "tx\u0080" }, "event_id", nil},
		{"Latin-1 after C1 is fine", func(r *Request) { r.Source = "caf\u00e9 \u00a0x" }, "", nil},
		{"RLO in influencer_id", func(r *Request) { r.InfluencerID = "influ_\u202etset" }, "influencer_id", nil},
		{"LRE in product", func(r *Request) { r.Product = "\u202ap" }, "product", nil},
		{"PDF in campaign", func(r *Request) { r.Campaign = "c\u202c" }, "campaign", nil},
		{"RLE in event_type", func(r *Request) { r.EventType = "reg\u202b" }, "event_type", nil},
		{"LRO in event_name", func(r *Request) { r.EventName = "a\u202db" }, "event_name", nil},
		{"LRI in medium", func(r *Request) { r.Medium = "a\u2066b" }, "medium", nil},
		{"RLI in source", func(r *Request) { r.Source = "a\u2067b" }, "source", nil},
		{"FSI in event_id", func(r *Request) { r.EventID = "a\u2068b" }, "event_id", nil},
		{"PDI in campaign", func(r *Request) { r.Campaign = "a\u2069b" }, "campaign", nil},
		{"LRM in influencer_id", func(r *Request) { r.InfluencerID = "a\u200eb" }, "influencer_id", nil},
		{"RLM in influencer_id", func(r *Request) { r.InfluencerID = "a\u200fb" }, "influencer_id", nil},
		{"ALM in source", func(r *Request) { r.Source = "a\u061cb" }, "source", nil},
		{"bidi in user_agent is fine", func(r *Request) { r.UserAgent = "Mozilla/5.0 \u202e" }, "", nil},
		{"C1 in user_agent", func(r *Request) { r.UserAgent = "Mozilla/5.0 \u0085x" }, "user_agent", nil},
		{"zero-width joiner is fine", func(r *Request) { r.InfluencerID = "\U0001f469\u200d\U0001f4bb" }, "", nil},
		{"country lower case", func(r *Request) { r.Country = "fr" }, "", func(t *testing.T, r Request) {
			if r.Country != "FR" {
				t.Errorf("country %q, want FR", r.Country)
			}
		}},
		{"country upper case kept", func(r *Request) { r.Country = "GB" }, "", func(t *testing.T, r Request) {
			if r.Country != "GB" {
				t.Errorf("country %q, want GB", r.Country)
			}
		}},
		{"country mixed case", func(r *Request) { r.Country = "sS" }, "", func(t *testing.T, r Request) {
			if r.Country != "SS" {
				t.Errorf("country %q, want SS", r.Country)
			}
		}},
		{"country ZZ (user-assigned)", func(r *Request) { r.Country = "ZZ" }, "country", nil},
		{"country xa (user-assigned)", func(r *Request) { r.Country = "xa" }, "country", nil},
		{"country XK (user-assigned)", func(r *Request) { r.Country = "XK" }, "country", nil},
		{"country AA (user-assigned)", func(r *Request) { r.Country = "AA" }, "country", nil},
		{"country QM (user-assigned)", func(r *Request) { r.Country = "QM" }, "country", nil},
		{"country UK (reserved)", func(r *Request) { r.Country = "uk" }, "country", nil},
		{"country EU (reserved)", func(r *Request) { r.Country = "EU" }, "country", nil},
		{"country AN (withdrawn)", func(r *Request) { r.Country = "AN" }, "country", nil},
		{"country unassigned", func(r *Request) { r.Country = "FX" }, "country", nil},
		{"country name", func(r *Request) { r.Country = "France" }, "country", nil},
		{"country three letters", func(r *Request) { r.Country = "FRA" }, "country", nil},
		{"country digits", func(r *Request) { r.Country = "F1" }, "country", nil},
		{"country one letter", func(r *Request) { r.Country = "F" }, "country", nil},
		{"ipv4", func(r *Request) { r.IP = "132.244.133.122" }, "", nil},
		{"ipv6", func(r *Request) { r.IP = "2001:DB8::1" }, "", func(t *testing.T, r Request) {
			if r.IP != "2001:db8::1" {
				t.Errorf("ip %q, want the canonical 2001:db8::1", r.IP)
			}
		}},
		{"ipv4-mapped ipv6", func(r *Request) { r.IP = "::ffff:10.0.0.1" }, "", func(t *testing.T, r Request) {
			if r.IP != "10.0.0.1" {
				t.Errorf("ip %q, want 10.0.0.1", r.IP)
			}
		}},
		{"ip with a zone", func(r *Request) { r.IP = "fe80::1%eth0" }, "ip", nil},
		{"ip garbage", func(r *Request) { r.IP = "300.1.1.1" }, "ip", nil},
		{"ip host name", func(r *Request) { r.IP = "example.com" }, "ip", nil},
		{"macro {transaction_id} in event_id", func(r *Request) { r.EventID = "{transaction_id}" }, "event_id", func(t *testing.T, r Request) {
			err := r.Validate()
			want := `event_id is "{transaction_id}", an affiliate macro your network did not fill in: send the transaction's real id`
			if err == nil || err.(*FieldError).Msg != want {
				t.Errorf("error %v, want %s", err, want)
			}
		}},
		{"macro {{transaction_id}} in event_id", func(r *Request) { r.EventID = " {{transaction_id}} " }, "event_id", nil},
		{"macro ${transaction_id} in event_id", func(r *Request) { r.EventID = "${transaction_id}" }, "event_id", nil},
		{"macro [transaction_id] in event_id", func(r *Request) { r.EventID = "[transaction_id]" }, "event_id", nil},
		{"macro %transaction_id% in event_id", func(r *Request) { r.EventID = "%transaction_id%" }, "event_id", nil},
		{"macro still percent-encoded in event_id", func(r *Request) { r.EventID = "%7Btransaction_id%7D" }, "event_id", nil},
		{"macro {clickid} in influencer_id", func(r *Request) { r.InfluencerID = "{clickid}" }, "influencer_id", nil},
		{"macro {aff_sub.2} in campaign", func(r *Request) { r.Campaign = "{aff_sub.2}" }, "campaign", nil},
		{"macro {sku} in product", func(r *Request) { r.Product = "{sku}" }, "product", nil},
		{"macro [event] in event_type", func(r *Request) { r.EventType = "[event]" }, "event_type", nil},
		{"macro {utm-medium} in medium", func(r *Request) { r.Medium = "{utm-medium}" }, "medium", nil},
		{"macro {{source}} in source", func(r *Request) { r.Source = "{{source}}" }, "source", nil},
		{"macro form in event_name is kept", func(r *Request) { r.EventName = "{checkout}" }, "", nil},
		{"braces inside a value are fine", func(r *Request) { r.EventID = "tx-{42}" }, "", nil},
		{"two macros with text are fine", func(r *Request) { r.Campaign = "{a} {b}" }, "", nil},
		{"braces around a space are fine", func(r *Request) { r.Campaign = "{summer sale}" }, "", nil},
		{"empty braces are fine", func(r *Request) { r.EventID = "{}" }, "", nil},
		{"percent text is fine", func(r *Request) { r.Campaign = "50% off" }, "", nil},
		{"unbalanced braces are fine", func(r *Request) { r.EventID = "{{tx}" }, "", nil},
		{"whitespace trimmed", func(r *Request) { r.Source = " twitch " }, "", func(t *testing.T, r Request) {
			if r.Source != "twitch" {
				t.Errorf("source %q, want twitch", r.Source)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(&r)
			err := r.Validate()
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.field != "" && !errors.As(err, &fe):
				t.Fatalf("error %v, want a FieldError on %s", err, tt.field)
			case tt.field != "" && fe.Field != tt.field:
				t.Fatalf("error on field %q (%v), want %q", fe.Field, err, tt.field)
			}
			if fe != nil && (!strings.HasPrefix(fe.Msg, fe.Field+" ") || strings.Contains(fe.Msg, "tset")) {
				t.Errorf("message %q does not start with the field's name, or echoes the value", fe.Msg)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct{ name, body, field string }{
		{"empty", "", "body"},
		{"not an object", `["a"]`, "body"},
		{"syntax", `{"influencer_id": "a",`, "body"},
		{"number", `{"influencer_id": 12, "product": "p"}`, "influencer_id"},
		{"object", `{"influencer_id": "a", "product": {"x": 1}}`, "product"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := DecodeJSON([]byte(tt.body), &r)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("error %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
	var r Request
	if err := DecodeJSON([]byte(`{"influencer_id":"a","product":"p","extra":[1,2],"ip":null}`), &r); err != nil {
		t.Fatalf("unknown fields and nulls must be accepted: %v", err)
	}
}

func TestDecodeBatch(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		max   int
		items int
		field string
	}{
		{"array", `[{"a":1},{"b":2}]`, 10, 2, ""},
		{"ndjson", "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}", 10, 3, ""},
		{"array too long", `[{},{},{}]`, 2, 0, "body"},
		{"ndjson too long", "{}\n{}\n{}", 2, 0, "body"},
		{"empty", "  ", 2, 0, "body"},
		{"empty array", "[]", 2, 0, "body"},
		{"bad array", "[{},", 2, 0, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := DecodeBatch([]byte(tt.body), tt.max)
			if tt.field != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Fatalf("error %v, want a FieldError on %s", err, tt.field)
				}
				return
			}
			if err != nil || len(items) != tt.items {
				t.Fatalf("got %d items, err %v; want %d", len(items), err, tt.items)
			}
		})
	}
}

// decodeJSONStd is DecodeJSON on encoding/json: the reference decodeFast
// must match.
func decodeJSONStd(body []byte, r *Request) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return fieldErr("body", "not an object")
	}
	if err := json.Unmarshal(body, r); err != nil {
		return jsonErr(err)
	}
	return nil
}

// jsonErr maps encoding/json errors to FieldErrors.
func jsonErr(err error) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fieldErr(te.Field, "%s must be a string", te.Field)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr("body", "the body is not valid JSON (at byte %d): send one JSON object, or form fields with Content-Type application/x-www-form-urlencoded", se.Offset)
	}
	return fieldErr("body", "the body is not a JSON object of postback fields: %v", err)
}

// FuzzDecodeJSONMatchesStd checks that the edge's decoder reads exactly what
// encoding/json reads, and fails exactly when it fails, with the same field.
func FuzzDecodeJSONMatchesStd(f *testing.F) {
	for _, s := range []string{
		exampleBody,
		`{"influencer_id":"a\u00e9\ud83c\udfae\ud800x","product":"p","extra":{"x":[1,-2.5e3,true,null]},"ip":null}`,
		`{"INFLUENCER_ID":"a","Product":"p","product":"q"}`,
		`{"influencer_id":5,"product":"p"}`,
		`{"influencer_id":"a","product":"p"} x`,
		`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{}`, ` { "event_id" : "\"\\\/\b\f\n\r\t" } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // encoding/json replaces invalid UTF-8; the edge rejects it in Validate
		}
		var fast, std Request
		errFast := DecodeJSON(body, &fast)
		errStd := decodeJSONStd(body, &std)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("%q: edge decoder error %v, encoding/json error %v", body, errFast, errStd)
		}
		if errFast == nil && fast != std {
			t.Fatalf("%q:\nedge decoder  %+v\nencoding/json %+v", body, fast, std)
		}
		var fe, se *FieldError
		if errors.As(errFast, &fe) && errors.As(errStd, &se) && (fe.Field == "body") != (se.Field == "body") {
			t.Fatalf("%q: edge decoder blames %q, encoding/json %q", body, fe.Field, se.Field)
		}
	})
}

// FuzzDecoders feeds the JSON and form decoders arbitrary bytes: they must
// never panic, and whatever Validate accepts must hold its invariants.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte(exampleBody))
	f.Add([]byte(`influencer_id=influ_test&product=product&ip=132.244.133.122&country=fr&user_agent=Mozilla%2F5.0`))
	f.Add([]byte(`{"influencer_id":"\u00e9","product":"p","country":"fr","ip":"::ffff:1.2.3.4"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(r Request) {
			if r.Validate() != nil {
				return
			}
			if r.InfluencerID == "" || r.Product == "" || r.EventType == "" {
				t.Fatalf("accepted without a required field: %+v", r)
			}
			if len(r.InfluencerID) > MaxInfluencerID || len(r.UserAgent) > MaxUserAgent || len(r.Campaign) > MaxCampaign {
				t.Fatalf("accepted an over-long field: %+v", r)
			}
			if _, ok := countryCode(r.Country); r.Country != "" && (!ok || strings.ToUpper(r.Country) != r.Country) {
				t.Fatalf("accepted country %q", r.Country)
			}
			for _, v := range []string{r.InfluencerID, r.Product, r.EventType, r.EventName, r.Campaign, r.Medium, r.Source, r.EventID} {
				if strings.ContainsFunc(v, schemas.IsBidiControl) {
					t.Fatalf("accepted a bidirectional formatting character in %q", v)
				}
			}
			for _, v := range []string{r.InfluencerID, r.Product, r.EventType, r.EventName, r.Campaign, r.Medium, r.Source, r.UserAgent, r.EventID} {
				if strings.TrimSpace(v) != v {
					t.Fatalf("accepted an untrimmed value %q", v)
				}
				if strings.ContainsFunc(v, schemas.IsControl) {
					t.Fatalf("accepted a control character in %q", v)
				}
			}
		}
		var r Request
		if DecodeJSON(body, &r) == nil {
			check(r)
		}
		var args fasthttp.Args
		args.ParseBytes(body)
		var fr Request
		args.VisitAll(func(k, v []byte) { fr.set(string(k), string(v)) })
		check(fr)
		if items, err := DecodeBatch(body, 100); err == nil {
			for _, it := range items {
				var br Request
				if DecodeJSON(it, &br) == nil {
					check(br)
				}
			}
		}
	})
}

// TestCountryTable checks the table of assigned codes and that every other
// pair of letters is refused, in either case, with a message asking for an
// ISO 3166-1 alpha-2 code.
func TestCountryTable(t *testing.T) {
	codes := strings.Fields(isoCountries)
	if len(codes) != 249 {
		t.Fatalf("%d codes, want the 249 officially assigned", len(codes))
	}
	if !slices.IsSorted(codes) {
		t.Error("the table is not sorted: keep it sorted, so that a missing or doubled code shows")
	}
	assigned := map[string]bool{}
	for _, c := range codes {
		if len(c) != 2 || strings.ToUpper(c) != c || assigned[c] {
			t.Errorf("bad or doubled entry %q", c)
		}
		assigned[c] = true
	}
	for _, c := range []string{"AA", "QM", "QZ", "XA", "XK", "XZ", "ZZ", "UK", "EU", "UN", "AN", "YU", "CS", "SU", "TP"} {
		if assigned[c] {
			t.Errorf("%s is in the table: it is not an officially assigned code", c)
		}
	}
	for _, c := range []string{"FR", "GB", "US", "DE", "AQ", "AX", "BQ", "CW", "SS", "SX", "PS", "TW", "VA"} {
		if !assigned[c] {
			t.Errorf("%s is missing from the table", c)
		}
	}
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			c := string([]rune{a, b})
			for _, in := range []string{c, strings.ToLower(c), string(a) + strings.ToLower(string(b))} {
				r := Request{InfluencerID: "i", Product: "p", Country: in}
				err := r.Validate()
				if assigned[c] {
					if err != nil || r.Country != c {
						t.Errorf("country %q: %v, stored %q; want %s accepted", in, err, r.Country, c)
					}
					continue
				}
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != "country" || !strings.Contains(fe.Msg, "ISO 3166-1 alpha-2") ||
					(c != "UK" && !strings.Contains(fe.Msg, "FR")) {
					t.Errorf("country %q: error %v; want one on country asking for an ISO 3166-1 alpha-2 code such as FR", in, err)
				}
			}
		}
	}
}
