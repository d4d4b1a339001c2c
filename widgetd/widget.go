package widgetd

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/streamtools/streamtools/schemas"
)

// maxIDBytes bounds every id in a widget URL.
const maxIDBytes = 512

// Widget names what one widget shows: an influencer's counts for a product
// of a customer, or only those of one campaign.
type Widget struct {
	Customer   string
	Product    string
	Influencer string
	// Campaign is set only with HasCampaign: the campaign form counts only
	// that campaign's day rows; the influencer form counts all of them.
	Campaign    string
	HasCampaign bool
}

// aggID names the totals that w shows.
func (w Widget) aggID() aggID {
	return aggID{infl: schemas.InfluencerKey(w.Customer, w.Product, w.Influencer), campaign: w.Campaign, hasCampaign: w.HasCampaign}
}

// wsPath is the websocket path of w, escaped.
func (w Widget) wsPath() string {
	p := "/ws/" + url.PathEscape(w.Customer) + "/" + url.PathEscape(w.Product) + "/" + url.PathEscape(w.Influencer)
	if w.HasCampaign {
		p += "/" + url.PathEscape(w.Campaign)
	}
	return p
}

// ParseHost splits a widget host of the public form
// <product>-widget-<customer_code>.<domain> (port ignored, case
// insensitive). Customer codes may contain '-', so the host is split at the
// first "-widget-"; a product code that contains "-widget-" cannot use the
// host form (the path form always works).
func ParseHost(host, domain string) (product, customer string, ok bool) {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	label, found := strings.CutSuffix(host, "."+domain)
	if !found || domain == "" || strings.Contains(label, ".") {
		return "", "", false
	}
	product, customer, found = strings.Cut(label, "-widget-")
	if !found || product == "" || customer == "" {
		return "", "", false
	}
	return product, customer, true
}

// splitPath splits a raw (still escaped) URL path into unescaped segments.
// A trailing slash is ignored; an empty or undecodable segment is an error.
func splitPath(raw string) ([]string, bool) {
	raw = strings.TrimPrefix(raw, "/")
	raw = strings.TrimSuffix(raw, "/")
	if raw == "" {
		return nil, true
	}
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" || len(u) > maxIDBytes || !utf8.ValidString(u) {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

// check refuses ids holding a control character (C0, DEL, C1) or a Unicode
// bidirectional formatting character: the edge never accepts one (see
// ingest.Request.Validate), so no counted row can hold one, and a page would
// display the URL's ids reordered. It names the part at fault.
func (w Widget) check() *FieldError {
	for _, p := range [...]struct{ field, v string }{
		{"customer_code", w.Customer}, {"product", w.Product}, {"influencer_id", w.Influencer}, {"campaign", w.Campaign},
	} {
		i := strings.IndexFunc(p.v, func(r rune) bool { return schemas.IsControl(r) || schemas.IsBidiControl(r) })
		if i < 0 {
			continue
		}
		r, _ := utf8.DecodeRuneInString(p.v[i:])
		return refusal(errBadID, p.field, fmt.Sprintf(
			"%s holds the control or bidirectional formatting character U+%04X: no StreamTools id does; check the widget URL", p.field, r), "")
	}
	return nil
}

// widgetFromParts reads customer/product/influencer[/campaign].
func widgetFromParts(parts []string) (Widget, bool) {
	if len(parts) < 3 || len(parts) > 4 {
		return Widget{}, false
	}
	w := Widget{Customer: parts[0], Product: parts[1], Influencer: parts[2]}
	if len(parts) == 4 {
		w.Campaign, w.HasCampaign = parts[3], true
	}
	return w, true
}
