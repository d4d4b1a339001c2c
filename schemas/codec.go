package schemas

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"
)

// Unmarshal decodes JSON into v with go-json (2-3 times faster than
// encoding/json; the processors decode every record they read). go-json
// v0.10 can read past the buffer on malformed escapes (an unknown escape in
// an object key: goccy/go-json#575, #604), and a record on a topic must
// never crash or mislead a reader: data holding a backslash is checked with
// encoding/json first, and so is data holding a NUL byte (go-json takes it
// for the end of the input and would accept `{...}\x00garbage`). Data
// without either cannot hold an escape, and skips that check, which cost
// as much as the decoding itself (measured: 20% of the processors' CPU);
// the fuzz targets of every codec feed go-json malformed input of both
// kinds.
func Unmarshal(data []byte, v any) error {
	if (bytes.IndexByte(data, '\\') >= 0 || bytes.IndexByte(data, 0) >= 0) && !stdjson.Valid(data) {
		return errors.New("invalid JSON")
	}
	return json.Unmarshal(data, v)
}

// Codec is a JSON codec for one record type. It satisfies goka.Codec:
// Encode accepts a T or a *T, Decode returns a *T.
type Codec[T any] struct{}

// Encode marshals a T or *T.
func (Codec[T]) Encode(value any) ([]byte, error) {
	switch v := value.(type) {
	case T:
		return json.Marshal(&v)
	case *T:
		return json.Marshal(v)
	default:
		var zero T
		return nil, fmt.Errorf("schemas: encoding %T with the %T codec", value, zero)
	}
}

// Decode unmarshals into a new *T.
func (Codec[T]) Decode(data []byte) (any, error) {
	v := new(T)
	if err := Unmarshal(data, v); err != nil {
		var zero T
		return nil, fmt.Errorf("schemas: decoding %T: %w", zero, err)
	}
	return v, nil
}

// Codecs of every record type, for goka edges and plain consumers alike.
var (
	PostbackCodec   Codec[Postback]
	EventCodec      Codec[Event]
	StatsCodec      Codec[Stats]
	CustomerCodec   Codec[Customer]
	AccessKeyCodec  Codec[AccessKey]
	SaltCodec       Codec[Salt]
	DeadLetterCodec Codec[DeadLetter]
	// ClaimRequestCodec and ClaimRowCodec: the processors' internal records.
	ClaimRequestCodec Codec[ClaimRequest]
	ClaimRowCodec     Codec[ClaimRow]
)
