package widgetd

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/streamtools/streamtools/schemas"
)

// Defaults of the look of a widget; URL parameters override them.
const (
	DefaultColor    = "#ffffff"
	DefaultBarColor = "#9146ff"
	DefaultBgColor  = "rgba(16,16,24,0.78)"
	DefaultFontSize = 24
)

// Bounds of the URL parameters.
const (
	maxTitleRunes  = 80
	maxEventTypes  = 32
	maxEventType   = 64
	maxGoal        = 1_000_000_000_000
	minFontSize    = 8
	maxFontSize    = 200
	maxColourBytes = 40
)

// Settings are the effective settings of one widget: the product's
// server-side settings (tenant registry) with the URL parameters applied.
// They travel in every snapshot and update, so the page has one source of
// truth.
type Settings struct {
	Title string `json:"title"`
	// Goal is the target of the goal bar; 0 hides the bar.
	Goal int64 `json:"goal"`
	// EventTypes counted in Total; empty counts every event type. Not sent
	// to the page, which shows only the total: the brand's list of event
	// types is not for the public.
	EventTypes []string `json:"-"`
	Color      string   `json:"color"`
	BarColor   string   `json:"bar_color"`
	BgColor    string   `json:"bg_color"`
	// FontSize in CSS pixels; the whole widget scales with it.
	FontSize int `json:"font_size"`
}

// Overrides are the URL parameters of a widget page or websocket. A nil or
// empty field keeps the product's setting.
type Overrides struct {
	Title      *string
	Goal       *int64
	EventTypes []string // nil keeps the product's; ["*"] means every type
	Color      string
	BarColor   string
	BgColor    string
	FontSize   int
	Preview    bool
}

// FieldError is a widget request that widgetd refuses: Msg says what to
// change, Field names the part of the URL at fault (a URL parameter, an id,
// or "path"; empty when none is). Its kind chooses the answer
// (statusTable); a FieldError of ParseOverrides is a bad URL parameter,
// 400 {"error": Msg, "field": Field}.
type FieldError struct {
	Field string
	Msg   string
	kind  error  // nil: errBadParam
	hint  string // more advice, on the widget page only
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "widgetd: " + e.Msg
	}
	return "widgetd: " + e.Field + ": " + e.Msg
}

// Unwrap returns the kind of the refusal.
func (e *FieldError) Unwrap() error {
	if e.kind == nil {
		return errBadParam
	}
	return e.kind
}

// colourRe accepts the CSS colours a widget needs without opening the page
// to CSS injection: hex (with or without '#', since '#' starts a URL
// fragment), names, and rgb()/rgba()/hsl()/hsla() with plain numbers.
var colourRe = regexp.MustCompile(`^(#?[0-9a-fA-F]{3,4}|#?[0-9a-fA-F]{6}|#?[0-9a-fA-F]{8}|[a-zA-Z]{3,20}|(rgb|rgba|hsl|hsla)\([0-9., %]{1,30}\))$`)

func parseColour(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if len(v) > maxColourBytes || !colourRe.MatchString(v) {
		return "", &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a colour: use hex such as ff0000 or #ff0000, a name such as gold, or rgba(0,0,0,0.5)", v)}
	}
	if !strings.HasPrefix(v, "#") && isHex(v) && (len(v) == 3 || len(v) == 4 || len(v) == 6 || len(v) == 8) {
		// A bare hex code: no CSS colour name is made of hex digits only.
		v = "#" + v
	}
	return v, nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// ParseOverrides reads the URL parameters of a widget:
//
//	title       text shown above the counter (up to 80 characters)
//	goal        goal of the bar, 0 hides it
//	types       counted event types, comma separated ("all": every type);
//	            event_types is an alias
//	color       text colour; bar_color, bg_color: bar and card colours
//	font_size   base font size in pixels (8 to 200)
//	preview     1 shows connection problems on the page (never on stream)
//
// Unknown parameters are ignored, so OBS or a link shortener adding its own
// is harmless.
func ParseOverrides(q url.Values) (Overrides, error) {
	var o Overrides
	if q.Has("title") {
		t := strings.TrimSpace(q.Get("title"))
		if !utf8.ValidString(t) || utf8.RuneCountInString(t) > maxTitleRunes {
			return o, &FieldError{Field: "title", Msg: fmt.Sprintf("use valid UTF-8 text of at most %d characters", maxTitleRunes)}
		}
		o.Title = &t
	}
	if v := q.Get("goal"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil || g < 0 || g > maxGoal {
			return o, &FieldError{Field: "goal", Msg: fmt.Sprintf("%q is not a goal: use a whole number from 0 (no bar) to %d", v, int64(maxGoal))}
		}
		o.Goal = &g
	}
	types := q.Get("types")
	field := "types"
	if types == "" && q.Get("event_types") != "" {
		types, field = q.Get("event_types"), "event_types"
	}
	if types != "" {
		if strings.EqualFold(types, "all") || types == "*" {
			o.EventTypes = []string{"*"}
		} else {
			for _, t := range strings.Split(types, ",") {
				t = strings.TrimSpace(t)
				if t == "" {
					continue
				}
				if len(t) > maxEventType || !utf8.ValidString(t) {
					return o, &FieldError{Field: field, Msg: fmt.Sprintf("event type %q: use at most %d bytes of valid UTF-8", t, maxEventType)}
				}
				o.EventTypes = append(o.EventTypes, t)
			}
			if len(o.EventTypes) > maxEventTypes {
				return o, &FieldError{Field: field, Msg: fmt.Sprintf("%d event types: list at most %d, or use all", len(o.EventTypes), maxEventTypes)}
			}
		}
	}
	var err error
	if o.Color, err = parseColour("color", q.Get("color")); err != nil {
		return o, err
	}
	if o.BarColor, err = parseColour("bar_color", q.Get("bar_color")); err != nil {
		return o, err
	}
	if o.BgColor, err = parseColour("bg_color", q.Get("bg_color")); err != nil {
		return o, err
	}
	if v := q.Get("font_size"); v != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "px"))
		if err != nil || n < minFontSize || n > maxFontSize {
			return o, &FieldError{Field: "font_size", Msg: fmt.Sprintf("%q is not a font size: use a whole number of pixels from %d to %d", v, minFontSize, maxFontSize)}
		}
		o.FontSize = n
	}
	switch strings.ToLower(q.Get("preview")) {
	case "", "0", "false", "no":
	default:
		o.Preview = true
	}
	return o, nil
}

// Resolve applies o to the product's settings.
func (o Overrides) Resolve(p schemas.Product) Settings {
	s := Settings{
		Title: p.Title, Goal: p.Goal, EventTypes: append([]string(nil), p.EventTypes...),
		Color: DefaultColor, BarColor: DefaultBarColor, BgColor: DefaultBgColor, FontSize: DefaultFontSize,
	}
	if o.Title != nil {
		s.Title = *o.Title
	}
	if o.Goal != nil {
		s.Goal = *o.Goal
	}
	switch {
	case len(o.EventTypes) == 1 && o.EventTypes[0] == "*":
		s.EventTypes = nil
	case o.EventTypes != nil:
		s.EventTypes = append([]string(nil), o.EventTypes...)
	}
	s.EventTypes = dedupe(s.EventTypes)
	if o.Color != "" {
		s.Color = o.Color
	}
	if o.BarColor != "" {
		s.BarColor = o.BarColor
	}
	if o.BgColor != "" {
		s.BgColor = o.BgColor
	}
	if o.FontSize != 0 {
		s.FontSize = o.FontSize
	}
	return s
}

// dedupe drops repeated event types (a repeated type would count twice in
// Total) and never returns nil, so JSON shows [] for "every type".
func dedupe(types []string) []string {
	out := make([]string, 0, len(types))
	seen := make(map[string]bool, len(types))
	for _, t := range types {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// Total sums the counted events of the settings' event types (all types
// when the settings name none).
func (s Settings) Total(counts map[string]int64) int64 {
	var t int64
	if len(s.EventTypes) == 0 {
		for _, n := range counts {
			t += n
		}
		return t
	}
	for _, et := range s.EventTypes {
		t += counts[et]
	}
	return t
}
