package dashboard

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// NoCampaign is the campaign filter value that selects postbacks sent
// without a campaign (stored as ” in the BI contract).
const NoCampaign = "(none)"

// MaxRangeDays bounds a date range, so that a time series stays a chart.
const MaxRangeDays = 1100

const dayLayout = "2006-01-02"

// Filter selects the rows of every view. It has no customer: the customer
// comes from the session and is added by where(), the only way a query of
// this package gets its WHERE clause.
type Filter struct {
	From, To   time.Time // days, inclusive
	Product    string
	Influencer string
	Campaign   string // NoCampaign selects rows without a campaign
	EventType  string
}

// query is a WHERE clause under construction. newQuery makes the customer
// the first condition; there is no other constructor.
type query struct {
	conds []string
	args  []any
}

func newQuery(customer string) *query {
	return &query{conds: []string{"customer_code = $1"}, args: []any{customer}}
}

// arg adds a value and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) where(cond string, v any) {
	q.conds = append(q.conds, strings.Replace(cond, "?", q.arg(v), 1))
}

func (q *query) String() string { return " WHERE " + strings.Join(q.conds, " AND ") }

// scoped returns the WHERE clause of f for customer: the rows of the
// customer, the date range and every filter set. It applies as well to
// events as to daily_stats, which share the column names.
func scoped(customer string, f Filter) *query {
	q := newQuery(customer)
	q.where("day >= ?", f.From)
	q.where("day <= ?", f.To)
	if f.Product != "" {
		q.where("product = ?", f.Product)
	}
	if f.Influencer != "" {
		q.where("influencer_id = ?", f.Influencer)
	}
	switch f.Campaign {
	case "":
	case NoCampaign:
		q.where("campaign = ?", "")
	default:
		q.where("campaign = ?", f.Campaign)
	}
	if f.EventType != "" {
		q.where("event_type = ?", f.EventType)
	}
	return q
}

// The measures of every table view, from daily_stats and from events.
const (
	statsMeasures = `sum(counted)::bigint AS counted, sum(duplicates)::bigint AS duplicates,
		sum(duplicate_visitor)::bigint AS duplicate_visitor, sum(duplicate_event_id)::bigint AS duplicate_event_id`
	eventMeasures = `count(*) FILTER (WHERE verdict = 'counted') AS counted,
		count(*) FILTER (WHERE verdict <> 'counted') AS duplicates,
		count(*) FILTER (WHERE reason = 'duplicate_visitor') AS duplicate_visitor,
		count(*) FILTER (WHERE reason = 'duplicate_event_id') AS duplicate_event_id`
)

type kind int

const (
	kText kind = iota
	kInt
	kDay
	kTime
)

// MarshalText names a kind in the API's column lists.
func (k kind) MarshalText() ([]byte, error) {
	return []byte([...]string{"text", "integer", "date", "timestamp"}[k]), nil
}

type column struct {
	Name string `json:"name"`
	Kind kind   `json:"type"`
}

var measureColumns = []column{{"counted", kInt}, {"duplicates", kInt}, {"duplicate_visitor", kInt}, {"duplicate_event_id", kInt}}

// A view is one table of the dashboard: the JSON API pages it, the CSV
// export streams all of it. Both run the SQL that build returns, so they
// are scoped alike.
type view struct {
	Name  string
	Title string
	// Columns of the SQL result, in order.
	Columns []column
	// Extra columns computed from a row (widget URLs), after Columns.
	Extra   []column
	extra   func(s *Server, customer string, f Filter, row []any) []any
	build   func(customer string, f Filter) (sql string, args []any)
	grouped bool // a breakdown (vs. the series or raw events)
}

func (v *view) AllColumns() []column { return append(append([]column(nil), v.Columns...), v.Extra...) }

// breakdown makes a view grouping table (daily_stats or events) by keys.
func breakdown(name, title, table string, keys ...string) *view {
	v := &view{Name: name, Title: title, grouped: true}
	for _, k := range keys {
		v.Columns = append(v.Columns, column{k, kText})
	}
	v.Columns = append(v.Columns, measureColumns...)
	measures := statsMeasures
	if table == "events" {
		measures = eventMeasures
	}
	keyList := strings.Join(keys, ", ")
	v.build = func(customer string, f Filter) (string, []any) {
		q := scoped(customer, f)
		return "SELECT " + keyList + ", " + measures + " FROM " + table + q.String() +
			" GROUP BY " + keyList + " ORDER BY counted DESC, duplicates DESC, " + keyList, q.args
	}
	return v
}

// views by name, as in the URLs /api/v1/views/{name} and /export/{name}.csv.
var views = func() map[string]*view {
	infl := breakdown("influencers", "Influencers", "daily_stats", "product", "influencer_id")
	infl.Columns = append(infl.Columns, column{"last_day", kDay})
	infl.build = func(customer string, f Filter) (string, []any) {
		q := scoped(customer, f)
		return `SELECT product, influencer_id, ` + statsMeasures + `, max(day) FILTER (WHERE counted > 0) AS last_day
			FROM daily_stats` + q.String() + ` GROUP BY product, influencer_id
			ORDER BY counted DESC, duplicates DESC, product, influencer_id`, q.args
	}
	infl.Extra = []column{{"widget_url", kText}, {"widget_public_url", kText}}
	infl.extra = func(s *Server, customer string, f Filter, row []any) []any {
		product, _ := row[0].(string)
		influencer, _ := row[1].(string)
		campaign := f.Campaign
		if campaign == NoCampaign {
			campaign = ""
		}
		return []any{s.WidgetURL(customer, product, influencer, campaign), s.WidgetPublicURL(customer, product, influencer, campaign)}
	}

	series := &view{Name: "days", Title: "Per day",
		Columns: append([]column{{"day", kDay}}, measureColumns...)}
	series.build = func(customer string, f Filter) (string, []any) {
		q := scoped(customer, f)
		// Days without data are rows of zeros: a chart needs every day.
		return `SELECT d::date AS day, coalesce(s.counted, 0), coalesce(s.duplicates, 0),
				coalesce(s.duplicate_visitor, 0), coalesce(s.duplicate_event_id, 0)
			FROM generate_series($2::date, $3::date, interval '1 day') AS d
			LEFT JOIN (SELECT day, ` + statsMeasures + ` FROM daily_stats` + q.String() + ` GROUP BY day) s ON s.day = d::date
			ORDER BY 1`, q.args
	}

	events := &view{Name: "events", Title: "Events", Columns: []column{
		{"received_at", kTime}, {"day", kDay}, {"id", kText}, {"event_id", kText}, {"product", kText},
		{"influencer_id", kText}, {"campaign", kText}, {"event_type", kText}, {"event_name", kText},
		{"medium", kText}, {"source", kText}, {"country", kText}, {"verdict", kText}, {"reason", kText},
	}}
	events.build = func(customer string, f Filter) (string, []any) {
		q := scoped(customer, f)
		return `SELECT received_at, day, id, event_id, product, influencer_id, campaign, event_type, event_name,
			medium, source, country, verdict, reason FROM events` + q.String() + ` ORDER BY received_at DESC, id DESC`, q.args
	}

	all := []*view{
		series, infl,
		breakdown("campaigns", "Campaigns", "daily_stats", "campaign"),
		breakdown("event_types", "Event types", "daily_stats", "event_type"),
		breakdown("products", "Products", "daily_stats", "product"),
		breakdown("countries", "Countries", "events", "country"),
		breakdown("sources", "Sources", "events", "source"),
		breakdown("mediums", "Mediums", "events", "medium"),
		events,
	}
	m := make(map[string]*view, len(all))
	for _, v := range all {
		m[v.Name] = v
	}
	return m
}()

// viewNames lists the views in a fixed order, for docs and errors.
var viewNames = []string{"days", "influencers", "campaigns", "event_types", "products", "countries", "sources", "mediums", "events"}

// Totals are the sums of a filter.
type Totals struct {
	Counted          int64 `json:"counted"`
	Duplicates       int64 `json:"duplicates"`
	DuplicateVisitor int64 `json:"duplicate_visitor"`
	DuplicateEventID int64 `json:"duplicate_event_id"`
}

func (s *Server) totals(ctx context.Context, customer string, f Filter) (Totals, error) {
	q := scoped(customer, f)
	var t Totals
	err := s.db.QueryRow(ctx, "SELECT coalesce(sum(counted), 0)::bigint, coalesce(sum(duplicates), 0)::bigint, "+
		"coalesce(sum(duplicate_visitor), 0)::bigint, coalesce(sum(duplicate_event_id), 0)::bigint FROM daily_stats"+q.String(),
		q.args...).Scan(&t.Counted, &t.Duplicates, &t.DuplicateVisitor, &t.DuplicateEventID)
	if err != nil {
		return Totals{}, fmt.Errorf("reading totals: %w", err)
	}
	return t, nil
}

// Options are the values the filters offer, and the days with data.
type Options struct {
	Products    []string `json:"products"`
	Influencers []string `json:"influencers"`
	Campaigns   []string `json:"campaigns"`
	EventTypes  []string `json:"event_types"`
	FirstDay    string   `json:"first_day,omitempty"`
	LastDay     string   `json:"last_day,omitempty"`
}

// maxOptions bounds each list of Options; the filter inputs accept any
// value typed in, the list only suggests.
const maxOptions = 2000

func (s *Server) options(ctx context.Context, customer string) (Options, error) {
	o := Options{Products: []string{}, Influencers: []string{}, Campaigns: []string{}, EventTypes: []string{}}
	q := newQuery(customer)
	lim := q.arg(maxOptions)
	rows, err := s.db.Query(ctx, `
		(SELECT 'p', product FROM daily_stats`+q.String()+` GROUP BY product ORDER BY product LIMIT `+lim+`)
		UNION ALL (SELECT 'i', influencer_id FROM daily_stats`+q.String()+` GROUP BY influencer_id ORDER BY influencer_id LIMIT `+lim+`)
		UNION ALL (SELECT 'c', campaign FROM daily_stats`+q.String()+` AND campaign <> '' GROUP BY campaign ORDER BY campaign LIMIT `+lim+`)
		UNION ALL (SELECT 'e', event_type FROM daily_stats`+q.String()+` GROUP BY event_type ORDER BY event_type LIMIT `+lim+`)`, q.args...)
	if err != nil {
		return o, fmt.Errorf("reading filter values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return o, fmt.Errorf("reading filter values: %w", err)
		}
		switch k {
		case "p":
			o.Products = append(o.Products, v)
		case "i":
			o.Influencers = append(o.Influencers, v)
		case "c":
			o.Campaigns = append(o.Campaigns, v)
		case "e":
			o.EventTypes = append(o.EventTypes, v)
		}
	}
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("reading filter values: %w", err)
	}
	var first, last *time.Time
	if err := s.db.QueryRow(ctx, `SELECT min(day), max(day) FROM daily_stats WHERE customer_code = $1`, customer).Scan(&first, &last); err != nil {
		return o, fmt.Errorf("reading the days with data: %w", err)
	}
	if first != nil {
		o.FirstDay, o.LastDay = first.Format(dayLayout), last.Format(dayLayout)
	}
	return o, nil
}

// defaultTo is the last day of a range that names none: today in UTC, or
// the customer's last day with data when it is later (a customer east of
// UTC is already tomorrow).
func (s *Server) defaultTo(ctx context.Context, customer string) (time.Time, error) {
	var d time.Time
	err := s.db.QueryRow(ctx, `WITH t AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today)
		SELECT greatest(max(day), (SELECT today FROM t)) FROM daily_stats
		WHERE customer_code = $1 AND day <= (SELECT today FROM t) + 1`, customer).Scan(&d)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the last day: %w", err)
	}
	return d, nil
}

// rowsOf runs v for customer and f and returns at most limit rows after
// offset, formatted for JSON, and whether more follow.
func (s *Server) rowsOf(ctx context.Context, v *view, customer string, f Filter, limit, offset int) ([]map[string]any, bool, error) {
	sql, args := v.build(customer, f)
	args = append(args, limit+1, offset)
	sql += fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(args)-1, len(args))
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", v.Name, err)
	}
	defer rows.Close()
	cols := v.AllColumns()
	out := []map[string]any{}
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		vals, err := rows.Values()
		if err != nil {
			return nil, false, fmt.Errorf("reading %s: %w", v.Name, err)
		}
		if v.extra != nil {
			vals = append(vals, v.extra(s, customer, f, vals)...)
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c.Name] = jsonValue(c.Kind, vals[i])
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", v.Name, err)
	}
	return out, more, nil
}

func jsonValue(k kind, v any) any {
	switch t := v.(type) {
	case nil:
		if k == kInt {
			return 0
		}
		if k == kDay || k == kTime {
			return nil
		}
		return ""
	case time.Time:
		if k == kDay {
			return t.Format(dayLayout)
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// csvValue formats a value for a CSV cell. Text that a spreadsheet would
// run as a formula (=, +, -, @, tab, CR first) gets a leading quote: ids
// and campaign names come from senders, and the export is opened in Excel.
func csvValue(k kind, v any) string {
	switch t := v.(type) {
	case nil:
		if k == kInt {
			return "0"
		}
		return ""
	case int64:
		return strconv.FormatInt(t, 10)
	case int32:
		return strconv.FormatInt(int64(t), 10)
	case time.Time:
		if k == kDay {
			return t.Format(dayLayout)
		}
		return t.UTC().Format(time.RFC3339Nano)
	case string:
		if t != "" && strings.ContainsRune("=+-@\t\r", rune(t[0])) {
			return "'" + t
		}
		return t
	}
	return fmt.Sprint(v)
}

// WidgetURL is the widget's path form on widgetd (Config.WidgetBaseURL):
// {base}/{customer}/{product}/{influencer}[/{campaign}].
func (s *Server) WidgetURL(customer, product, influencer, campaign string) string {
	u := strings.TrimRight(s.cfg.WidgetBaseURL, "/") + "/" + url.PathEscape(customer) + "/" + url.PathEscape(product) + "/" + url.PathEscape(influencer)
	if campaign != "" {
		u += "/" + url.PathEscape(campaign)
	}
	return u
}

// WidgetPublicURL is the widget's public host form:
// https://{product}-widget-{customer}.{domain}/{influencer}[/{campaign}].
func (s *Server) WidgetPublicURL(customer, product, influencer, campaign string) string {
	u := "https://" + product + "-widget-" + customer + "." + s.cfg.WidgetDomain + "/" + url.PathEscape(influencer)
	if campaign != "" {
		u += "/" + url.PathEscape(campaign)
	}
	return u
}
