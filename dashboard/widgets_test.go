package dashboard_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/streamtools/streamtools/dashboard"
	"github.com/streamtools/streamtools/schemas"
)

// TestWidgetsAPI: /api/v1/widgets says, per product of the session's
// customer, which event types its widget counts and which of the
// product's event types in the data it leaves out, in the sentence the
// influencers page shows beside the preview.
func TestWidgetsAPI(t *testing.T) {
	pool := testDB(t)
	var events []ev
	for i, et := range []string{"reg", "dep", "download", "download", "bonus", "install"} {
		product := "casino"
		if et == "install" {
			product = "app"
		}
		events = append(events, ev{ID: string(rune('a' + i)), Customer: "acme", Product: product, Influencer: "zoe",
			EventType: et, At: today(), Day: today(), Verdict: "counted"})
	}
	insert(t, pool, events)
	mustUser(t, pool, "acme", "m@acme.example", pw)
	mustUser(t, pool, "newco", "m@newco.example", pw)
	products := map[string]map[string]schemas.Product{"acme": {
		"casino": {Code: "casino", Title: "Sign-ups", Goal: 100, EventTypes: []string{"reg", "dep"}},
		"app":    {Code: "app", Title: "Installs"},
		"shop":   {Code: "shop", EventTypes: []string{"sale"}},
	}}
	srv := serve(t, pool, dashboard.Config{Products: func(c string) (map[string]schemas.Product, bool) {
		p, ok := products[c]
		return p, ok
	}})

	type info struct {
		Product    string   `json:"product"`
		Title      string   `json:"title"`
		Goal       int64    `json:"goal"`
		EventTypes []string `json:"event_types"`
		Uncounted  []string `json:"uncounted_event_types"`
		Note       string   `json:"note"`
	}
	type answer struct {
		Known    bool   `json:"known"`
		Products []info `json:"products"`
	}
	c := newClient(t, srv.URL)
	c.login("m@acme.example", pw)
	var got answer
	c.getJSON("/api/v1/widgets", &got)
	want := answer{Known: true, Products: []info{
		{"app", "Installs", 0, []string{}, []string{}, ""},
		{"casino", "Sign-ups", 100, []string{"reg", "dep"}, []string{"bonus", "download"}, "The widget counts reg and dep, not bonus or download."},
		{"shop", "", 0, []string{"sale"}, []string{}, "The widget counts sale."},
	}}
	if !reflect.DeepEqual(got, want) {
		b, _ := json.Marshal(got)
		t.Errorf("widgets of acme: %s\nwant %+v", b, want)
	}

	// A customer the customers topic does not know (yet), and a server
	// without Config.Products: nothing to say.
	c = newClient(t, srv.URL)
	c.login("m@newco.example", pw)
	c.getJSON("/api/v1/widgets", &got)
	if got.Known || len(got.Products) != 0 {
		t.Errorf("widgets of an unknown customer: %+v", got)
	}
	bare := serve(t, pool, dashboard.Config{})
	c = newClient(t, bare.URL)
	c.login("m@acme.example", pw)
	c.getJSON("/api/v1/widgets", &got)
	if got.Known || len(got.Products) != 0 {
		t.Errorf("widgets without Config.Products: %+v", got)
	}
}
