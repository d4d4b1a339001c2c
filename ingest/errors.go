package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of refusal. Every error answer of the edge is a *FieldError of one
// of these kinds, and statusTable gives its HTTP status: handlers say what
// went wrong, the table says how it is answered.
var (
	errInvalid         = errors.New("ingest: invalid request")
	errUnauthorized    = errors.New("ingest: unknown or revoked access key")
	errNotFound        = errors.New("ingest: no such endpoint")
	errMethod          = errors.New("ingest: method not allowed")
	errTimeout         = errors.New("ingest: request not received in time")
	errTooLarge        = errors.New("ingest: body too large")
	errMediaType       = errors.New("ingest: unsupported Content-Type")
	errRateLimited     = errors.New("ingest: over the rate limit")
	errHeadersTooLarge = errors.New("ingest: request headers too large")
	errUnavailable     = errors.New("ingest: not stored, retry later")
)

// statusTable maps each kind of refusal to its status, and says which
// answers carry Retry-After (the same request may succeed later; 400s will
// not). Every error answer comes from it: the handlers' (answer), those
// written before Fiber runs (writeRefusal), the connection limit's and a
// batch's per-item results. Each body is {"error": "...", "field": "..."}:
// what to change, and the field at fault when there is one. An error of no
// kind is a bug: 500 {"error": "internal error"}, logged, its text never
// sent (it may quote the request). TestErrorTable walks it.
var statusTable = []struct {
	kind       error
	status     int
	retryAfter bool
}{
	{errInvalid, 400, false},
	{errUnauthorized, 401, false},
	{errNotFound, 404, false},
	{errMethod, 405, false},
	{errTimeout, 408, false},
	{errTooLarge, 413, false},
	{errMediaType, 415, false},
	{errRateLimited, 429, true},
	{errHeadersTooLarge, 431, false},
	{errUnavailable, 503, true},
}

const statusInternal = 500

// statusOf returns the status of err and whether it carries Retry-After.
func statusOf(err error) (status int, retryAfter bool) {
	for _, row := range statusTable {
		if errors.Is(err, row.kind) {
			return row.status, row.retryAfter
		}
	}
	return statusInternal, false
}

// kindOf returns the kind of a status that Fiber or fasthttp chose, nil
// for one the table does not know.
func kindOf(status int) error {
	for _, row := range statusTable {
		if row.status == status {
			return row.kind
		}
	}
	return nil
}

// retryAfterOf reports whether an answer with status carries Retry-After.
func retryAfterOf(status int) bool {
	for _, row := range statusTable {
		if row.status == status {
			return row.retryAfter
		}
	}
	return false
}

// refusal returns a refusal of kind: field names what to change (or is
// empty), msg says how.
func refusal(kind error, field, format string, args ...any) *FieldError {
	return &FieldError{kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// bodyOf returns the status, Retry-After and JSON body that answer err.
func bodyOf(err error) (status int, retryAfter bool, body []byte) {
	status, retryAfter = statusOf(err)
	eb := errorBody{Error: "internal error"}
	var fe *FieldError
	if status != statusInternal && errors.As(err, &fe) {
		eb = errorBody{Error: fe.Msg, Field: fe.Field}
	}
	body, _ = json.Marshal(eb) // a struct of strings always marshals
	return status, retryAfter, body
}
