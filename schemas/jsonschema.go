package schemas

import (
	"embed"
)

// JSON Schema (draft 2020-12) files of the API body and of the records, for
// data teams and for tests that validate what components produce. They are
// embedded so that `streamtools` can serve or print them without the source.
//
//go:embed *.schema.json
var SchemaFiles embed.FS

// Schema file names in SchemaFiles.
const (
	// PostbackRequestSchema describes the body of POST /{access_key}.
	PostbackRequestSchema = "postback_request.schema.json"
	// PostbackV1Schema describes a version 1 record of the postbacks topic.
	PostbackV1Schema = "postback.v1.schema.json"
)

// Schema returns the bytes of an embedded schema file, e.g.
// Schema(PostbackV1Schema).
func Schema(name string) ([]byte, error) { return SchemaFiles.ReadFile(name) }
