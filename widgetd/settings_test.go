package widgetd

import (
	"errors"
	"net/url"
	"reflect"
	"testing"

	"github.com/streamtools/streamtools/schemas"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		host, domain      string
		product, customer string
		ok                bool
	}{
		{"product-widget-default.streamtools.io", "streamtools.io", "product", "default", true},
		{"product-widget-default.streamtools.io:443", "streamtools.io", "product", "default", true},
		{"Product-Widget-Default.StreamTools.io.", "streamtools.io", "product", "default", true},
		{"signups-widget-my-brand.example.test", "example.test", "signups", "my-brand", true},
		{"a-widget-b-widget-c.example.test", "example.test", "a", "b-widget-c", true},
		{"product-widget-.streamtools.io", "streamtools.io", "", "", false},
		{"-widget-default.streamtools.io", "streamtools.io", "", "", false},
		{"api-tracker-default.streamtools.io", "streamtools.io", "", "", false},
		{"x.product-widget-default.streamtools.io", "streamtools.io", "", "", false},
		{"product-widget-default.evil.io", "streamtools.io", "", "", false},
		{"product-widget-defaultstreamtools.io", "streamtools.io", "", "", false},
		{"127.0.0.1:8081", "streamtools.io", "", "", false},
		{"localhost", "streamtools.io", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			p, c, ok := ParseHost(tt.host, tt.domain)
			if p != tt.product || c != tt.customer || ok != tt.ok {
				t.Errorf("ParseHost(%q) = %q, %q, %v; want %q, %q, %v", tt.host, p, c, ok, tt.product, tt.customer, tt.ok)
			}
		})
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
		ok   bool
	}{
		{"/default/product/influ_test", []string{"default", "product", "influ_test"}, true},
		{"/default/product/influ_test/Jan2024_special_event/", []string{"default", "product", "influ_test", "Jan2024_special_event"}, true},
		{"/c/p/Jos%C3%A9%20Mar%C3%ADa/spring%2Fsale", []string{"c", "p", "José María", "spring/sale"}, true},
		{"/c/p/a+b", []string{"c", "p", "a+b"}, true},
		{"/", nil, true},
		{"/c//i", nil, false},
		{"/c/p/%zz", nil, false},
		{"/c/p/%FF", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := splitPath(tt.raw)
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitPath(%q) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseOverrides(t *testing.T) {
	product := schemas.Product{Code: "product", Title: "Sign-ups", Goal: 100, EventTypes: []string{"reg"}}
	tests := []struct {
		query    string
		want     Settings
		errField string
	}{
		{"", Settings{Title: "Sign-ups", Goal: 100, EventTypes: []string{"reg"}, Color: DefaultColor, BarColor: DefaultBarColor, BgColor: DefaultBgColor, FontSize: DefaultFontSize}, ""},
		{"title=Road%20to%2050&goal=50&types=reg,dl,reg&color=ff0&bar_color=%2300ff00&bg_color=rgba(0,0,0,0.5)&font_size=40",
			Settings{Title: "Road to 50", Goal: 50, EventTypes: []string{"reg", "dl"}, Color: "#ff0", BarColor: "#00ff00", BgColor: "rgba(0,0,0,0.5)", FontSize: 40}, ""},
		{"types=all&goal=0&title=&bg_color=transparent", Settings{Title: "", Goal: 0, EventTypes: []string{}, Color: DefaultColor, BarColor: DefaultBarColor, BgColor: "transparent", FontSize: DefaultFontSize}, ""},
		{"event_types=dl", Settings{Title: "Sign-ups", Goal: 100, EventTypes: []string{"dl"}, Color: DefaultColor, BarColor: DefaultBarColor, BgColor: DefaultBgColor, FontSize: DefaultFontSize}, ""},
		{"goal=-1", Settings{}, "goal"},
		{"goal=ten", Settings{}, "goal"},
		{"font_size=2", Settings{}, "font_size"},
		{"color=red%3Bbackground:url(x)", Settings{}, "color"},
		{"bar_color=expression(alert(1))", Settings{}, "bar_color"},
		{"bg_color=%3C%2Fstyle%3E", Settings{}, "bg_color"},
		{"title=" + url.QueryEscape(string(make([]byte, 200))), Settings{}, "title"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			o, err := ParseOverrides(q)
			if tt.errField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.errField {
					t.Fatalf("error = %v; want a FieldError on %q", err, tt.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.Resolve(product); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
}

func TestTotal(t *testing.T) {
	counts := map[string]int64{"reg": 2, "dl": 5}
	for _, tt := range []struct {
		types []string
		want  int64
	}{{nil, 7}, {[]string{}, 7}, {[]string{"reg"}, 2}, {[]string{"reg", "dl", "buy"}, 7}} {
		if got := (Settings{EventTypes: tt.types}).Total(counts); got != tt.want {
			t.Errorf("Total with %v = %d; want %d", tt.types, got, tt.want)
		}
	}
}
