package schemas

import (
	"time"
)

// Schema versions of the records. A consumer that sees a higher version than
// it knows must send the record to the dead-letter topic, not guess.
const (
	PostbackVersion   = 1
	EventVersion      = 1
	StatsVersion      = 2
	CustomerVersion   = 1
	AccessKeyVersion  = 1
	SaltVersion       = 1
	DeadLetterVersion = 1
)

// DefaultEventType is the event_type of a postback that names none.
const DefaultEventType = "event"

// Attrs are the sender-supplied attributes of a postback, as the edge
// validated and normalised them. Both Postback and Event carry them.
type Attrs struct {
	InfluencerID string `json:"influencer_id"`
	Product      string `json:"product"`
	EventType    string `json:"event_type"`
	EventName    string `json:"event_name,omitempty"`
	Campaign     string `json:"campaign,omitempty"`
	Medium       string `json:"medium,omitempty"`
	Source       string `json:"source,omitempty"`
	Country      string `json:"country,omitempty"`
	// EventID is the sender's own transaction id, the idempotency key: a
	// repeated EventID of the same customer counts once.
	EventID string `json:"event_id,omitempty"`
}

// Postback is the record on the postbacks topic: one accepted postback.
// It never holds an IP address: the edge replaces ip + user_agent with
// Visitor, a keyed hash whose key (salt) rotates daily and is deleted after.
type Postback struct {
	V  int    `json:"v"`
	ID string `json:"id"` // assigned by the edge, unique, returned in the 202 body
	// ReceivedAt is the edge's receive time, UTC: the event time.
	ReceivedAt   time.Time `json:"received_at"`
	CustomerCode string    `json:"customer_code"`
	// TimeZone is the customer's IANA time zone when the edge received the
	// postback, and Day the receive date in it (YYYY-MM-DD): "the same day"
	// of the anti-cheat window. Both are fixed at the edge so that a replay
	// reproduces the same verdicts.
	TimeZone  string `json:"timezone"`
	Day       string `json:"day"`
	AntiCheat bool   `json:"anticheat"` // the customer's setting at receive time
	Attrs
	// Visitor is hex(HMAC-SHA256(salt of Day, customer|ip|user_agent)), set
	// only when both ip and user_agent were given.
	Visitor string `json:"visitor,omitempty"`
}

// Verdicts of Event.Verdict.
const (
	VerdictCounted   = "counted"
	VerdictDuplicate = "duplicate"
)

// Reasons of Event.Reason for a duplicate.
const (
	ReasonDuplicateVisitor = "duplicate_visitor"  // same visitor, same action, same day
	ReasonDuplicateEventID = "duplicate_event_id" // the sender's event_id was seen before
)

// Event is the record on the events topic: a postback with its verdict.
// It carries no visitor fingerprint.
type Event struct {
	V            int       `json:"v"`
	ID           string    `json:"id"` // the Postback ID
	ReceivedAt   time.Time `json:"received_at"`
	CustomerCode string    `json:"customer_code"`
	Day          string    `json:"day"`
	Attrs
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	// SeqPartition and Seq are the partition and offset of the postback in
	// the postbacks topic: together, a unique and stable id of the postback
	// within a postbacks topic.
	SeqPartition int32 `json:"seq_partition"`
	Seq          int64 `json:"seq"`
	// Src is where the verdicts processor read the input this event came
	// from. Copies of an event (re-emitted after a restart) carry the same
	// Src; the stats processor applies each Src once (Watermarks).
	Src Position `json:"src"`
}

// Counts are the absolute counts of one event type.
type Counts struct {
	Counted int64 `json:"counted"`
	// Duplicates by reason (ReasonDuplicateVisitor, ReasonDuplicateEventID).
	Duplicates map[string]int64 `json:"duplicates,omitempty"`
}

// Stats is a row of the stats table (a goka group table keyed by DayKey,
// read from its changelog topic by the sink and widgetd, which sum rows per
// influencer and per campaign). Values are absolute, so a consumer simply
// keeps the latest row per key.
type Stats struct {
	V            int               `json:"v"`
	CustomerCode string            `json:"customer_code"`
	Product      string            `json:"product"`
	InfluencerID string            `json:"influencer_id"`
	Campaign     string            `json:"campaign"`
	Day          string            `json:"day,omitempty"`
	ByType       map[string]Counts `json:"by_type"`
	// Total is the sum of Counted over ByType.
	Total int64 `json:"total"`
	// Applied is the replay guard: per input lane and partition of the
	// verdicts processor, the highest Src offset applied to this row.
	Applied   Watermarks `json:"applied"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Product is a customer's widget code and its server-side widget settings,
// which URL parameters of the widget page may override.
type Product struct {
	Code  string `json:"code"`
	Title string `json:"title,omitempty"`
	// EventTypes counted by the widget; empty means all.
	EventTypes []string `json:"event_types,omitempty"`
	Goal       int64    `json:"goal,omitempty"`
}

// Customer is a brand (tenant): the record on the customers topic.
type Customer struct {
	V    int    `json:"v"`
	Code string `json:"code"`
	Name string `json:"name,omitempty"`
	// TimeZone (IANA) defines "the same day" for anti-cheat and daily stats.
	TimeZone  string `json:"timezone"`
	AntiCheat bool   `json:"anticheat"`
	// RateLimit is the sustained postbacks per second allowed per access
	// key; 0 means the edge's default.
	RateLimit int `json:"rate_limit,omitempty"`
	// Products keyed by code. An empty map accepts any product.
	Products  map[string]Product `json:"products,omitempty"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// AccessKey is the record on the access-keys topic, keyed by Hash. The key
// itself is shown once at creation and never stored.
type AccessKey struct {
	V int `json:"v"`
	// Hash is hex(SHA-256(key)). Keys are 32 random bytes, so a fast hash is
	// as safe as a slow one and keeps the hot path cheap.
	Hash         string     `json:"hash"`
	CustomerCode string     `json:"customer_code"`
	Label        string     `json:"label,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// Salt is the record on the salts topic: the random key of the visitor
// fingerprint for one day, deleted (tombstoned) once that day is over in
// every time zone.
type Salt struct {
	V         int       `json:"v"`
	Day       string    `json:"day"`
	Salt      []byte    `json:"salt"` // 32 random bytes
	CreatedAt time.Time `json:"created_at"`
}

// DeadLetter is the record on the dead-letter topic.
type DeadLetter struct {
	V          int       `json:"v"`
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	Offset     int64     `json:"offset"`
	Key        []byte    `json:"key"`
	Value      []byte    `json:"value"` // the original bytes
	Reason     string    `json:"reason"`
	Processor  string    `json:"processor"`
	RecordedAt time.Time `json:"recorded_at"`
}
