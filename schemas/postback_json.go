package schemas

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendPostback appends the JSON of p, byte for byte what encoding/json
// writes for it, without reflection: the profile showed json.Marshal among
// the edge's largest costs per request, and the edge encodes every postback
// it accepts. PostbackCodec decodes what it writes.
//
// A field added to Postback (or Attrs) must be added here too:
// TestAppendPostbackCoversEveryField fails until it is, and
// TestAppendPostbackMatchesStd and FuzzAppendPostback check the escaping.
func AppendPostback(b []byte, p *Postback) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(p.V), 10)
	b = append(b, `,"id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"received_at":"`...)
	b = p.ReceivedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","customer_code":`...)
	b = appendString(b, p.CustomerCode)
	b = append(b, `,"timezone":`...)
	b = appendString(b, p.TimeZone)
	b = append(b, `,"day":`...)
	b = appendString(b, p.Day)
	b = append(b, `,"anticheat":`...)
	b = strconv.AppendBool(b, p.AntiCheat)
	b = append(b, `,"influencer_id":`...)
	b = appendString(b, p.InfluencerID)
	b = append(b, `,"product":`...)
	b = appendString(b, p.Product)
	b = append(b, `,"event_type":`...)
	b = appendString(b, p.EventType)
	b = appendOpt(b, `,"event_name":`, p.EventName)
	b = appendOpt(b, `,"campaign":`, p.Campaign)
	b = appendOpt(b, `,"medium":`, p.Medium)
	b = appendOpt(b, `,"source":`, p.Source)
	b = appendOpt(b, `,"country":`, p.Country)
	b = appendOpt(b, `,"event_id":`, p.EventID)
	b = appendOpt(b, `,"visitor":`, p.Visitor)
	return append(b, '}')
}

func appendOpt(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(append(b, key...), v)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does by default: HTML-safe
// (<, > and & escaped), invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
