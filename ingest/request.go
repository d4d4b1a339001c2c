package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/streamtools/streamtools/schemas"
)

// Request is one postback as the sender gave it: the fields of a JSON body
// (docs/edge.md, Fields), the same as form fields or GET query parameters.
type Request struct {
	InfluencerID string `json:"influencer_id"`
	Product      string `json:"product"`
	EventType    string `json:"event_type"`
	EventName    string `json:"event_name"`
	Campaign     string `json:"campaign"`
	Medium       string `json:"medium"`
	Source       string `json:"source"`
	IP           string `json:"ip"`
	Country      string `json:"country"`
	UserAgent    string `json:"user_agent"`
	EventID      string `json:"event_id"`
}

// FieldError is a request the edge refuses: Msg says what to change, Field
// names the field at fault (empty when none is). Its kind chooses the
// status (statusTable); a FieldError of a decoder or of Validate is 400
// {"error": Msg, "field": Field}.
type FieldError struct {
	Field string
	Msg   string
	kind  error // nil: errInvalid
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Unwrap returns the kind of the refusal.
func (e *FieldError) Unwrap() error {
	if e.kind == nil {
		return errInvalid
	}
	return e.kind
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Length bounds of the fields, in bytes after trimming surrounding
// whitespace. They are mirrored in schemas/postback_request.schema.json.
const (
	MaxInfluencerID = 128
	MaxProduct      = 64
	MaxEventType    = 64
	MaxEventName    = 128
	MaxCampaign     = 128
	MaxMedium       = 64
	MaxSource       = 64
	MaxIP           = 45 // the longest textual IPv6 address
	MaxUserAgent    = 1024
	MaxEventID      = 128
)

// field describes one request field for the decoders and the validator.
type field struct {
	name     string
	max      int
	required bool
	// shown: the value is stored and displayed (dashboard, widget URL,
	// exports), so it may not hold bidirectional formatting characters.
	// user_agent is only hashed into the fingerprint, and the visitor's
	// browser, not the sender, chooses it: a stray one must not cost the
	// brand its postback.
	shown bool
	// fix, when set, is the advice of the macro error: the field takes an
	// id or a code, never an unfilled affiliate macro (see macro).
	fix string
	ptr func(*Request) *string
}

var fields = [...]field{
	{"influencer_id", MaxInfluencerID, true, true, "send the influencer's real id", func(r *Request) *string { return &r.InfluencerID }},
	{"product", MaxProduct, true, true, "send the product's code", func(r *Request) *string { return &r.Product }},
	{"event_type", MaxEventType, false, true, "send the event's type, such as sale, or leave it out", func(r *Request) *string { return &r.EventType }},
	{"event_name", MaxEventName, false, true, "", func(r *Request) *string { return &r.EventName }},
	{"campaign", MaxCampaign, false, true, "send the campaign's real name, or leave it out", func(r *Request) *string { return &r.Campaign }},
	{"medium", MaxMedium, false, true, "send the real medium, or leave it out", func(r *Request) *string { return &r.Medium }},
	{"source", MaxSource, false, true, "send the real source, or leave it out", func(r *Request) *string { return &r.Source }},
	{"ip", MaxIP, false, false, "", func(r *Request) *string { return &r.IP }},
	{"country", 2, false, true, "", func(r *Request) *string { return &r.Country }},
	{"user_agent", MaxUserAgent, false, false, "", func(r *Request) *string { return &r.UserAgent }},
	{"event_id", MaxEventID, false, true, "send the transaction's real id", func(r *Request) *string { return &r.EventID }},
}

// set stores value into the field called name; unknown names are ignored
// (senders often add their own parameters).
func (r *Request) set(name, value string) {
	for i := range fields {
		if fields[i].name == name {
			*fields[i].ptr(r) = value
			return
		}
	}
}

// Validate trims and checks every field, normalises country (upper case)
// and ip (canonical text), and defaults event_type. It returns a
// *FieldError naming the first field at fault.
func (r *Request) Validate() error {
	for i := range fields {
		f := &fields[i]
		p := f.ptr(r)
		v := strings.TrimSpace(*p)
		*p = v
		if v == "" {
			if f.required {
				return fieldErr(f.name, "%s is required", f.name)
			}
			continue
		}
		if !utf8.ValidString(v) {
			return fieldErr(f.name, "%s is not valid UTF-8", f.name)
		}
		if len(v) > f.max {
			if f.name == "country" {
				return errCountryForm
			}
			return fieldErr(f.name, "%s is %d bytes long: the limit is %d", f.name, len(v), f.max)
		}
		if i := strings.IndexFunc(v, schemas.IsControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(v[i:])
			return fieldErr(f.name, "%s contains the control character U+%04X at byte %d: remove control characters", f.name, r, i)
		}
		if f.shown {
			if i := strings.IndexFunc(v, schemas.IsBidiControl); i >= 0 {
				r, _ := utf8.DecodeRuneInString(v[i:])
				return fieldErr(f.name, "%s contains the bidirectional formatting character U+%04X at byte %d: remove it; it changes how the text around it is displayed", f.name, r, i)
			}
		}
		if f.fix != "" && isMacro(v) {
			return fieldErr(f.name, "%s is %q, an affiliate macro your network did not fill in: %s", f.name, v, f.fix)
		}
	}
	if r.EventType == "" {
		r.EventType = schemas.DefaultEventType
	}
	if r.Country != "" {
		c, ok := countryCode(r.Country)
		switch {
		case ok:
			r.Country = c
		case len(r.Country) != 2 || !isLetter(r.Country[0]) || !isLetter(r.Country[1]):
			return errCountryForm
		case strings.EqualFold(r.Country, "UK"):
			return fieldErr("country", "country UK is not an ISO 3166-1 alpha-2 code: send GB for the United Kingdom")
		default:
			return fieldErr("country", "country %s is not an assigned ISO 3166-1 alpha-2 code (user-assigned and reserved codes such as ZZ, XA or XK are refused): send one such as FR", strings.ToUpper(r.Country))
		}
	}
	if r.IP != "" {
		a, err := netip.ParseAddr(r.IP)
		if err != nil || a.Zone() != "" {
			// The value is not echoed: it may be (part of) an IP address.
			return fieldErr("ip", "ip is not a valid IPv4 or IPv6 address")
		}
		r.IP = a.Unmap().String()
	}
	return nil
}

// isMacro reports a value that is, whole, an affiliate-network placeholder
// left unfilled: {name}, {{name}}, ${name}, [name] or %name%, where name is
// letters, digits, underscores, dots or dashes; also one percent-encoded
// once more (%7Bname%7D sent in a JSON body, or encoded twice in a URL).
// Stored as is, every later postback with the same placeholder as event_id
// would count as a duplicate of the first. A value with anything around the
// placeholder ("sale {x}", "{a} {b}") is accepted.
func isMacro(v string) bool {
	if macroForm(v) {
		return true
	}
	if strings.IndexByte(v, '%') >= 0 {
		if u, err := url.PathUnescape(v); err == nil && u != v {
			return macroForm(u)
		}
	}
	return false
}

func macroForm(v string) bool {
	var name string
	switch {
	case len(v) > 4 && strings.HasPrefix(v, "{{") && strings.HasSuffix(v, "}}"):
		name = v[2 : len(v)-2]
	case len(v) > 3 && strings.HasPrefix(v, "${") && v[len(v)-1] == '}':
		name = v[2 : len(v)-1]
	case len(v) > 2 && (v[0] == '{' && v[len(v)-1] == '}' || v[0] == '[' && v[len(v)-1] == ']' || v[0] == '%' && v[len(v)-1] == '%'):
		name = v[1 : len(v)-1]
	default:
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

var errCountryForm = fieldErr("country", "country must be an ISO 3166-1 alpha-2 code, two letters such as FR")

func isLetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

// DecodeJSON decodes one JSON object of postback fields into r, as
// encoding/json would (see decode.go). Unknown fields are ignored; known
// fields must be strings (or null).
func DecodeJSON(body []byte, r *Request) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return fieldErr("body", "the body is empty: send a JSON object with at least influencer_id and product")
	}
	if body[0] != '{' {
		return fieldErr("body", "the body is not a JSON object: send {\"influencer_id\": ..., \"product\": ...}")
	}
	return decodeFast(body, r)
}

// DecodeBatch splits a batch body (a JSON array of objects, or NDJSON: one
// object per line) into raw items, at most maxItems of them.
func DecodeBatch(body []byte, maxItems int) ([][]byte, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fieldErr("body", "the batch is empty: send a JSON array of postbacks or one JSON object per line")
	}
	var items [][]byte
	if body[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fieldErr("body", "the batch is not a valid JSON array: %v", err)
		}
		if len(raw) > maxItems {
			return nil, fieldErr("body", "the batch has %d items: the limit is %d, split it", len(raw), maxItems)
		}
		items = make([][]byte, len(raw))
		for i, m := range raw {
			items[i] = m
		}
	} else {
		for len(body) > 0 {
			line := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				line, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			if line = bytes.TrimSpace(line); len(line) == 0 {
				continue
			}
			if len(items) == maxItems {
				return nil, fieldErr("body", "the batch has more than %d items: split it", maxItems)
			}
			items = append(items, line)
		}
	}
	if len(items) == 0 {
		return nil, fieldErr("body", "the batch is empty: send a JSON array of postbacks or one JSON object per line")
	}
	return items, nil
}
