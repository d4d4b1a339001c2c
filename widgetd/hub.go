package widgetd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// hub holds every day row with the sums over them (see aggregates) and
// fans changes out to the subscribed websockets. Subscribers of the same
// influencer or campaign with the same URL parameters share a view, so a
// change is encoded once per view, not once per connection.
type hub struct {
	heartbeat time.Duration

	mu     sync.Mutex
	aggs   *aggregates      // guarded by mu
	topics map[aggID]*topic // aggregates with subscribers; guarded by mu
}

type topic struct {
	views map[string]*view // by overrides fingerprint
}

// view is one widget with one set of settings and its subscribers.
type view struct {
	id       aggID
	w        Widget
	o        Overrides
	settings Settings
	subs     map[*subscriber]struct{}
	body     []byte // the last message body: a JSON object without its "type"
}

// Message is the JSON the websocket sends (type "snapshot" or "update"),
// and the body of a plain GET of the websocket URL. Widget URLs are public,
// so it carries only what the page shows: the total of the widget's event
// types, the settings it draws with, and the ids of its own URL. Never the
// counts per event type, the list of counted types, nor when the last
// conversion happened: figures a brand did not choose to put on stream
// (TestPublicMessage).
type Message struct {
	Type       string  `json:"type,omitempty"`
	Customer   string  `json:"customer_code"`
	Product    string  `json:"product"`
	Influencer string  `json:"influencer_id"`
	Campaign   *string `json:"campaign,omitempty"`
	Total      int64   `json:"total"`
	Settings
	// HeartbeatMS is the heartbeat interval: a page that hears nothing for
	// a few intervals reconnects.
	HeartbeatMS int64 `json:"heartbeat_ms"`
	// NoData says, in preview mode (?preview=1) only, that no stats row
	// names this influencer (or its campaign) yet: the page hints at a
	// typo in the URL's ids rather than showing a silent 0. A widget on
	// stream never gets it.
	NoData bool `json:"no_data,omitempty"`
}

func newHub(heartbeat time.Duration) *hub {
	return &hub{heartbeat: heartbeat, aggs: newAggregates(), topics: map[aggID]*topic{}}
}

// message returns the current state of w (whose aggregate is id) with
// settings s, for a preview page or not; guarded by mu.
func (h *hub) message(id aggID, w Widget, s Settings, preview bool) Message {
	var total int64
	t := h.aggs.totals(id)
	if t != nil {
		total = s.Total(t.counts)
	}
	m := Message{
		Customer: w.Customer, Product: w.Product, Influencer: w.Influencer,
		Total: total, Settings: s, HeartbeatMS: h.heartbeat.Milliseconds(),
		NoData: preview && t == nil,
	}
	if w.HasCampaign {
		c := w.Campaign
		m.Campaign = &c
	}
	return m
}

// encode fills v.body from the current totals and reports whether the
// visible state changed; guarded by mu. A change the page would not show
// (another event type, duplicates only) sends nothing.
func (h *hub) encode(v *view) bool {
	body, err := json.Marshal(h.message(v.id, v.w, v.settings, v.o.Preview))
	if err != nil {
		panic(fmt.Sprintf("widgetd: encoding a widget message: %v", err)) // strings and ints always encode
	}
	if v.body != nil && bytes.Equal(body, v.body) {
		return false
	}
	v.body = body
	return true
}

// snapshot returns the current state of w with settings s, for a
// preview page or not.
func (h *hub) snapshot(w Widget, s Settings, preview bool) Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.message(w.aggID(), w, s, preview)
}

// subscribe adds sub to the view of (w, o) and queues its snapshot. The
// returned function unsubscribes.
func (h *hub) subscribe(w Widget, o Overrides, s Settings, sub *subscriber) func() {
	id := w.aggID()
	fp := o.fingerprint()
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[id]
	if t == nil {
		t = &topic{views: map[string]*view{}}
		h.topics[id] = t
	}
	v := t.views[fp]
	if v == nil {
		v = &view{id: id, w: w, o: o, settings: s, subs: map[*subscriber]struct{}{}}
		h.encode(v)
		t.views[fp] = v
	}
	v.subs[sub] = struct{}{}
	sub.offer(v.body, true)
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(v.subs, sub)
		if len(v.subs) == 0 {
			delete(t.views, fp)
			if len(t.views) == 0 {
				delete(h.topics, id)
			}
		}
	}
}

// apply applies changelog records to the sums and pushes every visible
// change: a day row touches its influencer and its campaign.
func (h *hub) apply(ups []dayUpdate) {
	if len(ups) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	touched := map[aggID]bool{}
	for _, u := range ups {
		if !h.aggs.apply(u) {
			continue
		}
		for _, id := range [2]aggID{{infl: u.infl}, {infl: u.infl, campaign: u.campaign, hasCampaign: true}} {
			if _, ok := h.topics[id]; ok {
				touched[id] = true
			}
		}
	}
	for id := range touched {
		for _, v := range h.topics[id].views {
			h.push(v)
		}
	}
}

// push re-encodes v and offers a changed state to its subscribers;
// guarded by mu.
func (h *hub) push(v *view) {
	if !h.encode(v) {
		return
	}
	for sub := range v.subs {
		sub.offer(v.body, false)
	}
}

// resettle re-resolves every view's settings (the tenant registry changed)
// and pushes the views whose settings changed.
func (h *hub) resettle(resolve func(Widget, Overrides) (Settings, bool)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.topics {
		for _, v := range t.views {
			if s, ok := resolve(v.w, v.o); ok {
				v.settings = s
				h.push(v)
			}
		}
	}
}

// rowCount returns how many day rows the hub holds.
func (h *hub) rowCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.aggs.rows
}

// fingerprint identifies the overrides that change what a view sends.
func (o Overrides) fingerprint() string {
	var b bytes.Buffer
	if o.Title != nil {
		fmt.Fprintf(&b, "t%q", *o.Title)
	}
	if o.Goal != nil {
		fmt.Fprintf(&b, "g%d", *o.Goal)
	}
	if o.EventTypes != nil {
		fmt.Fprintf(&b, "e%q", o.EventTypes)
	}
	fmt.Fprintf(&b, "c%q b%q k%q f%d p%v", o.Color, o.BarColor, o.BgColor, o.FontSize, o.Preview)
	return b.String()
}

// subscriber is one websocket's mailbox. Messages carry absolute values, so
// it keeps only the latest: a slow client gets the newest state, never an
// unbounded queue.
type subscriber struct {
	wake chan struct{} // capacity 1

	mu       sync.Mutex
	body     []byte // next message body; guarded by mu
	snapshot bool   // the next message is a snapshot; guarded by mu
}

func newSubscriber() *subscriber { return &subscriber{wake: make(chan struct{}, 1)} }

// offer replaces the pending message. A pending snapshot stays a snapshot:
// the page's first message is always one.
func (s *subscriber) offer(body []byte, snapshot bool) {
	s.mu.Lock()
	if s.body == nil {
		s.snapshot = snapshot
	} else {
		s.snapshot = s.snapshot || snapshot
	}
	s.body = body
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the pending message, if any.
func (s *subscriber) take() (body []byte, snapshot bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, snapshot = s.body, s.snapshot
	s.body, s.snapshot = nil, false
	return body, snapshot
}
