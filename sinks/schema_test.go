package sinks_test

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/streamtools/streamtools/schemas"
)

// The records the sink's tests produce (the processors' contract) match the
// JSON Schema files that docs/postgres.md points data teams to.
func TestRecordsMatchJSONSchemas(t *testing.T) {
	compile := func(name string) *jsonschema.Schema {
		b, err := schemas.Schema(name)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(name, doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dup := makeEvent(3)
	st := makeStats(1, 2).s
	dl := schemas.DeadLetter{V: 1, Topic: "t", Reason: "r", Processor: "sink", Key: []byte("k"), Value: []byte("{")}
	for _, c := range []struct {
		schema string
		value  any
	}{
		{"event.v1.schema.json", makeEvent(1)},
		{"event.v1.schema.json", dup},
		{"stats.v2.schema.json", st},
		{"deadletter.v1.schema.json", dl},
	} {
		b, err := schemas.Codec[any]{}.Encode(c.value)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := compile(c.schema).Validate(inst); err != nil {
			t.Errorf("%s: %v\n%s", c.schema, err, b)
		}
	}
}
