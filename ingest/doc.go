// Package ingest is the postback edge: the HTTP server that brands'
// servers call, which turns each accepted postback into one record on the
// postbacks topic and answers 202 only once Kafka acknowledged it.
//
// It owns the HTTP side (endpoints, parsing, validation, authentication,
// rate and size limits, the error answers) and the postbacks producer. It
// does not decide whether a postback counts (processors/), and it keeps no
// state but caches: customers and access keys come from the tenant topics
// (internal/tenant), the daily salts from the salts topic, and the record's
// shape, key and encoding from schemas/.
//
// # Endpoints
//
//	POST /{access_key}        one postback: a JSON object or a form body (server.go, handlePostback)
//	GET  /{access_key}?...    the same, in the query string
//	POST /{access_key}/batch  a JSON array of up to BatchMaxItems postbacks (handleBatch);
//	                          the answer lists each item's status
//	GET  /healthz, /readyz, /metrics (and HEAD)
//
// Any other method on these paths gets 405 with Allow (notRouted); HEAD
// /{access_key} included, since a HEAD must store nothing.
//
// /readyz answers 503 until the customers, access keys and the salts of the
// days around now are loaded, and while the brokers do not answer.
//
// # A postback's path
//
//  1. conns.go: at most MaxConns open connections; one more is answered the
//     JSON 503 and closed.
//  2. server.go (admit): the access key is authenticated against the
//     registry (auth.go caches successes; an unknown and a revoked key get
//     the same 401, in the same time), then rate limited (limit.go: a token
//     bucket per key, the customer's rate_limit or DefaultRateLimit, a burst
//     of one second; a batch takes one token per item).
//  3. decode.go and request.go: the body is parsed (a JSON decoder that reads
//     exactly what encoding/json would, FuzzDecodeJSONMatchesStd checks it)
//     into a Request and validated: lengths, control characters, unfilled
//     affiliate macros ({click_id}), ISO country codes (country.go), the
//     product against the customer's. The Content-Type chooses the parser
//     (server.go, decode): multipart/* is refused with 415; a body that
//     starts with { or [ is JSON whatever its Content-Type (curl -d labels
//     JSON as a form); otherwise application/x-www-form-urlencoded is a
//     form, and any other Content-Type, or none, is read as JSON. A
//     refusal is 400 {"error","field"} naming the field and the fix (415
//     for multipart/*). In server.go, badRequest, unavailable, errorHandler
//     and refuseMalformed (requests that are not valid HTTP/1.1) write
//     every error answer: always JSON, never quoting the request.
//  4. server.go (record): the edge stamps the postback with an id (id.go,
//     a UUIDv7), its receive time and the customer's day (days.go), then
//     replaces ip and user_agent with the visitor fingerprint,
//     hex(HMAC-SHA256(salt of the day, customer|ip|user_agent)) (salts.go).
//     The salts are random, one per UTC date, shared by every edge through
//     the compacted salts topic and deleted once their day is over
//     everywhere: no IP address leaves the edge, and no fingerprint can be
//     recomputed after two days.
//  5. server.go (produce): schemas.AppendPostback encodes the record and
//     schemas.AppendPostbackKey builds its key; the producer (acks=all,
//     sarama's partitioner for goka) sends it, and the request waits for the
//     acknowledgement at most ProduceTimeout: 202 {"id"} once acknowledged,
//     503 with Retry-After otherwise. A 503 means "not known to be stored":
//     the record may still land, so a sender retries with the same event_id
//     to have it counted once. The edge never answers 2xx for a record Kafka
//     did not acknowledge.
//
// Run shuts down in order: stop accepting, let in-flight requests finish,
// flush and close the producer, stop tailing salts and tenants. metrics.go
// lists the Prometheus metrics. Config documents every limit and its
// default; cmd/streamtools/ingest.go maps them to flags.
package ingest
