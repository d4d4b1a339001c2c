package widgetd

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/streamtools/streamtools/schemas"
)

// Fuzz targets of what widgetd reads from a request: the path (path form
// and host form), the host, and the URL parameters.

// FuzzSplitPath: splitPath never panics; what it accepts has non-empty,
// bounded, valid UTF-8 parts, and escaping the parts again makes a path
// that splits to the same parts. A widget read from the parts has a
// websocket path that names the same widget.
func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{
		"/default/product/influ_test", "/default/product/influ_test/Jan2024_special_event/",
		"/c/p/Jos%C3%A9%20Mar%C3%ADa/spring%2Fsale", "/c/p/a+b", "/", "", "//", "/c//i", "/c/p/%zz", "/c/p/%FF",
		"/ws/c/p/i", "influ_test", "/influ_test/%2F%2F", "/c/p/%00/%25", "/a/b/c/d/e", "/c/p/" + strings.Repeat("x", 513),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		parts, ok := splitPath(raw)
		if !ok {
			return
		}
		for _, p := range parts {
			if p == "" || len(p) > maxIDBytes || !utf8.ValidString(p) {
				t.Fatalf("splitPath(%q) accepted the part %q", raw, p)
			}
		}
		escaped := make([]string, len(parts))
		for i, p := range parts {
			escaped[i] = url.PathEscape(p)
		}
		canon := "/" + strings.Join(escaped, "/")
		again, ok := splitPath(canon)
		if !ok || !slices.Equal(again, parts) {
			t.Fatalf("splitPath(%q) = %q, but its re-escaped form %q splits to %q, %v", raw, parts, canon, again, ok)
		}
		if again, ok := splitPath(canon + "/"); !ok || !slices.Equal(again, parts) {
			t.Fatalf("a trailing slash changes %q: %q, %v", canon, again, ok)
		}
		w, ok := widgetFromParts(parts)
		if !ok {
			return
		}
		ws := w.wsPath()
		rest, found := strings.CutPrefix(ws, "/ws/")
		if !found {
			t.Fatalf("wsPath of %+v = %q", w, ws)
		}
		wparts, ok := splitPath("/" + rest)
		if !ok {
			t.Fatalf("wsPath of %+v = %q, which does not split", w, ws)
		}
		if back, ok := widgetFromParts(wparts); !ok || back != w {
			t.Fatalf("wsPath of %+v = %q, which names %+v, %v", w, ws, back, ok)
		}
		if back := w.aggID(); back.infl != schemas.InfluencerKey(w.Customer, w.Product, w.Influencer) || back.hasCampaign != w.HasCampaign {
			t.Fatalf("aggID of %+v = %+v", w, back)
		}
	})
}

// FuzzParseHost: ParseHost never panics; what it accepts is two non-empty
// lower-case labels without a dot, which make a host that parses to the
// same product and customer, with a port, a trailing dot or in upper
// case too.
func FuzzParseHost(f *testing.F) {
	for _, h := range [][2]string{
		{"product-widget-default.streamtools.io", "streamtools.io"}, {"product-widget-default.streamtools.io:443", "streamtools.io"},
		{"Product-Widget-Default.StreamTools.io.", "streamtools.io"}, {"a-widget-b-widget-c.example.test", "example.test"},
		{"product-widget-.streamtools.io", "streamtools.io"}, {"x.product-widget-default.streamtools.io", "streamtools.io"},
		{"127.0.0.1:8081", "streamtools.io"}, {"[::1]:8081", "streamtools.io"}, {"p-widget-a:b:c.streamtools.io", "streamtools.io"},
		{"p-widget-c.streamtools.io", ""}, {"p-widget-c.io", "io."}, {"p-widget-\u0130.streamtools.io", "streamtools.io"},
	} {
		f.Add(h[0], h[1])
	}
	f.Fuzz(func(t *testing.T, host, domain string) {
		product, customer, ok := ParseHost(host, domain)
		if !ok {
			if product != "" || customer != "" {
				t.Fatalf("ParseHost(%q, %q) refused but returned %q, %q", host, domain, product, customer)
			}
			return
		}
		if product == "" || customer == "" || strings.Contains(product, ".") || strings.Contains(customer, ".") || strings.Contains(product, "-widget-") {
			t.Fatalf("ParseHost(%q, %q) = %q, %q", host, domain, product, customer)
		}
		if strings.ToLower(product) != product || strings.ToLower(customer) != customer {
			t.Fatalf("ParseHost(%q, %q) = %q, %q: not lower case", host, domain, product, customer)
		}
		if fuzzValidDomain(domain) {
			d := strings.TrimSuffix(domain, ".")
			canon := product + "-widget-" + customer + "." + d
			for _, h := range []string{canon, canon + ".", canon + ":443", strings.ToUpper(canon)} {
				if h == strings.ToUpper(canon) && !fuzzIsASCII(canon) {
					continue // Unicode case mapping does not round-trip
				}
				if h == canon+":443" && strings.ContainsAny(canon, ":[]") {
					continue // a label with colons is taken as is only while it does not split as host:port
				}
				if p, c, ok := ParseHost(h, domain); !ok || p != product || c != customer {
					t.Fatalf("ParseHost(%q, %q) = %q, %q, but %q parses to %q, %q, %v", host, domain, product, customer, h, p, c, ok)
				}
			}
		}
	})
}

// fuzzValidDomain: the domains Config.Validate lets through.
func fuzzValidDomain(d string) bool {
	return d != "" && !strings.ContainsAny(d, "/: ") && !strings.HasPrefix(d, ".")
}

func fuzzIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzParseOverrides: ParseOverrides never panics; it refuses with a
// FieldError naming a parameter; what it accepts is within the documented
// bounds, colours cannot break out of a CSS value, and writing the
// overrides back as a query gives the same overrides. The resolved
// settings have no repeated event type and encode as JSON.
func FuzzParseOverrides(f *testing.F) {
	for _, s := range []string{
		"", "title=Road%20to%2050&goal=50&types=reg,dl,reg&color=ff0&bar_color=%2300ff00&bg_color=rgba(0,0,0,0.5)&font_size=40",
		"types=all&goal=0&title=&bg_color=transparent", "event_types=dl", "goal=-1", "goal=ten", "font_size=2", "font_size=40px",
		"color=red%3Bbackground:url(x)", "bar_color=expression(alert(1))", "bg_color=%3C%2Fstyle%3E", "preview=1", "preview=FALSE",
		"title=%FF", "types=,,%20reg%20,", "types=*", "title=a&title=b", "utm_source=obs&goal=1000000000000", "bg_color=hsla(120,%2050%25,%2050%25,%200.3)",
	} {
		f.Add(s)
	}
	product := schemas.Product{Code: "product", Title: "Sign-ups", Goal: 100, EventTypes: []string{"reg", "reg"}}
	fields := []string{"title", "goal", "types", "event_types", "color", "bar_color", "bg_color", "font_size"}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // the server answers 400 before ParseOverrides
		}
		o, err := ParseOverrides(q)
		if err != nil {
			fe, ok := err.(*FieldError)
			if !ok || !slices.Contains(fields, fe.Field) || fe.Msg == "" {
				t.Fatalf("ParseOverrides(%q): error %#v", query, err)
			}
			return
		}
		if o.Title != nil && (!utf8.ValidString(*o.Title) || utf8.RuneCountInString(*o.Title) > maxTitleRunes || strings.TrimSpace(*o.Title) != *o.Title) {
			t.Fatalf("ParseOverrides(%q): title %q", query, *o.Title)
		}
		if o.Goal != nil && (*o.Goal < 0 || *o.Goal > maxGoal) {
			t.Fatalf("ParseOverrides(%q): goal %d", query, *o.Goal)
		}
		if o.FontSize != 0 && (o.FontSize < minFontSize || o.FontSize > maxFontSize) {
			t.Fatalf("ParseOverrides(%q): font size %d", query, o.FontSize)
		}
		if len(o.EventTypes) > maxEventTypes {
			t.Fatalf("ParseOverrides(%q): %d event types", query, len(o.EventTypes))
		}
		for _, et := range o.EventTypes {
			if et == "" || len(et) > maxEventType || !utf8.ValidString(et) || strings.TrimSpace(et) != et || strings.Contains(et, ",") {
				t.Fatalf("ParseOverrides(%q): event type %q", query, et)
			}
		}
		for _, c := range []string{o.Color, o.BarColor, o.BgColor} {
			if len(c) > maxColourBytes+1 || strings.ContainsAny(c, `;:{}<>"'\/`+"\n\r\t") {
				t.Fatalf("ParseOverrides(%q): colour %q could break out of a CSS value", query, c)
			}
		}

		// Written back as a query, the overrides parse to themselves.
		back := url.Values{}
		if o.Title != nil {
			back.Set("title", *o.Title)
		}
		if o.Goal != nil {
			back.Set("goal", strconv.FormatInt(*o.Goal, 10))
		}
		switch {
		case len(o.EventTypes) == 1 && o.EventTypes[0] == "*":
			back.Set("types", "all")
		case len(o.EventTypes) > 0:
			back.Set("types", strings.Join(o.EventTypes, ",")+",") // a trailing comma keeps a type named "all" literal
		}
		for k, v := range map[string]string{"color": o.Color, "bar_color": o.BarColor, "bg_color": o.BgColor} {
			if v != "" {
				back.Set(k, v)
			}
		}
		if o.FontSize != 0 {
			back.Set("font_size", strconv.Itoa(o.FontSize))
		}
		if o.Preview {
			back.Set("preview", "1")
		}
		o2, err := ParseOverrides(back)
		if err != nil {
			t.Fatalf("ParseOverrides(%q) = %+v, but its query %q is refused: %v", query, o, back.Encode(), err)
		}
		if !fuzzSameOverrides(o, o2) {
			t.Fatalf("ParseOverrides(%q) = %+v, but its query %q parses to %+v", query, o, back.Encode(), o2)
		}

		s := o.Resolve(product)
		seen := map[string]bool{}
		for _, et := range s.EventTypes {
			if seen[et] {
				t.Fatalf("ParseOverrides(%q): settings %+v repeat the event type %q", query, s, et)
			}
			seen[et] = true
		}
		if s.EventTypes == nil {
			t.Fatalf("ParseOverrides(%q): settings %+v have nil event types (JSON null, not [])", query, s)
		}
		if _, err := json.Marshal(pageConfig{Settings: s}); err != nil {
			t.Fatalf("ParseOverrides(%q): settings %+v do not encode: %v", query, s, err)
		}
	})
}

func fuzzSameOverrides(a, b Overrides) bool {
	return (a.Title == nil) == (b.Title == nil) && (a.Title == nil || *a.Title == *b.Title) &&
		(a.Goal == nil) == (b.Goal == nil) && (a.Goal == nil || *a.Goal == *b.Goal) &&
		slices.Equal(a.EventTypes, b.EventTypes) && (a.EventTypes == nil) == (b.EventTypes == nil) &&
		a.Color == b.Color && a.BarColor == b.BarColor && a.BgColor == b.BgColor && a.FontSize == b.FontSize && a.Preview == b.Preview
}
