// Package schemas owns every name and shape that crosses a process boundary in
// StreamTools: topic names, goka group and table names, the record types that
// travel on those topics, their codecs, the Kafka message keys, and the JSON
// Schema files that document them for data teams.
//
// A reader should find any topic name, record field or codec here and nowhere
// else. Records are JSON (readable with kcat and any BI tool) and every record
// carries a schema version in its "v" field.
//
// The package does not talk to Kafka or Postgres; it only names and encodes.
package schemas
