package ingest

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The edge's JSON decoder. A postback is a flat object of strings, and the
// profile of the edge showed encoding/json's reflection-driven Unmarshal as
// the largest single cost of a request (docs/benchmark-notes.md, "The edge"). This
// decoder reads exactly what encoding/json would put into a Request (the
// fuzz test FuzzDecodeJSONMatchesStd checks it against encoding/json): keys
// match field names exactly or else case-insensitively, the last duplicate
// wins, null leaves a field empty, unknown fields of any JSON type are
// skipped (and checked to be valid JSON), a known field that is not a
// string is an error naming it. It allocates one string per body.

// decodeFast decodes body, which starts with '{' after optional whitespace,
// into r.
func decodeFast(body []byte, r *Request) error {
	d := decoder{s: string(body)}
	d.ws()
	if !d.eat('{') {
		return d.syntax()
	}
	d.ws()
	if d.eat('}') {
		return d.end()
	}
	for {
		d.ws()
		key, ok := d.str()
		if !ok {
			return d.syntax()
		}
		d.ws()
		if !d.eat(':') {
			return d.syntax()
		}
		d.ws()
		f := lookupField(key)
		switch {
		case d.peek() == '"':
			v, ok := d.str()
			if !ok {
				return d.syntax()
			}
			if f != nil {
				*f.ptr(r) = v
			}
		case strings.HasPrefix(d.s[d.i:], "null"):
			d.i += 4
		case f != nil:
			// Check the whole body first: encoding/json reports a syntax
			// error anywhere before a type error.
			if !d.skip() || !d.rest() {
				return d.syntax()
			}
			return fieldErr(f.name, "%s must be a string", f.name)
		default:
			if !d.skip() {
				return d.syntax()
			}
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return d.end()
		}
		return d.syntax()
	}
}

func lookupField(key string) *field {
	for i := range fields {
		if fields[i].name == key {
			return &fields[i]
		}
	}
	for i := range fields {
		if strings.EqualFold(fields[i].name, key) {
			return &fields[i]
		}
	}
	return nil
}

type decoder struct {
	s string
	i int
}

func (d *decoder) syntax() error {
	return fieldErr("body", "the body is not valid JSON (at byte %d): send one JSON object, or form fields with Content-Type application/x-www-form-urlencoded", d.i)
}

// end checks that only whitespace follows the object.
func (d *decoder) end() error {
	d.ws()
	if d.i != len(d.s) {
		return d.syntax()
	}
	return nil
}

// rest checks that the remainder of an object, from just after a value, is
// valid JSON, so that a type error is reported only for a well-formed body.
func (d *decoder) rest() bool {
	for {
		d.ws()
		if d.eat('}') {
			return d.end() == nil
		}
		if !d.eat(',') {
			return false
		}
		d.ws()
		if _, ok := d.str(); !ok {
			return false
		}
		d.ws()
		if !d.eat(':') {
			return false
		}
		d.ws()
		if !d.skip() {
			return false
		}
	}
}

func (d *decoder) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// str reads a JSON string at d.i. Without escapes it returns a substring of
// the body (no copy); invalid UTF-8 is kept as is, for Validate to reject.
func (d *decoder) str() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			v := d.s[start:d.i]
			d.i++
			return v, true
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return "", false
		}
		d.i++
	}
	return "", false
}

// strEscaped continues str from the first backslash, building the value as
// encoding/json does (lone surrogates become U+FFFD).
func (d *decoder) strEscaped(start int) (string, bool) {
	b := make([]byte, 0, d.i-start+16)
	b = append(b, d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.s) {
			return "", false
		}
		e := d.s[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A valid pair makes one rune; anything else is U+FFFD
				// and the next escape is read on its own.
				if strings.HasPrefix(d.s[d.i:], `\u`) {
					save := d.i
					d.i += 2
					if r2, ok := d.hex4(); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					d.i = save
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.i : d.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// skip passes over one JSON value of any type, checking its syntax.
func (d *decoder) skip() bool {
	return d.skipDepth(0)
}

const maxDepth = 64

func (d *decoder) skipDepth(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := d.peek(); {
	case c == '"':
		_, ok := d.str()
		return ok
	case c == '{':
		d.i++
		d.ws()
		if d.eat('}') {
			return true
		}
		for {
			d.ws()
			if _, ok := d.str(); !ok {
				return false
			}
			d.ws()
			if !d.eat(':') {
				return false
			}
			d.ws()
			if !d.skipDepth(depth + 1) {
				return false
			}
			d.ws()
			if d.eat('}') {
				return true
			}
			if !d.eat(',') {
				return false
			}
		}
	case c == '[':
		d.i++
		d.ws()
		if d.eat(']') {
			return true
		}
		for {
			d.ws()
			if !d.skipDepth(depth + 1) {
				return false
			}
			d.ws()
			if d.eat(']') {
				return true
			}
			if !d.eat(',') {
				return false
			}
		}
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return false
}

func (d *decoder) lit(s string) bool {
	if strings.HasPrefix(d.s[d.i:], s) {
		d.i += len(s)
		return true
	}
	return false
}

// number checks the JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() bool {
	d.eat('-')
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return false
	}
	if d.eat('.') {
		if !d.digits() {
			return false
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !d.digits() {
			return false
		}
	}
	return true
}

func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}
