package api

import (
	"encoding/json"
	"fmt"
)

// record is an annotation value that validates itself after decoding.
type record[T any] interface {
	*T
	Validate() error
}

// decodeAnnotation decodes and validates the annotation value s of the
// record kind (the word used in its errors).
func decodeAnnotation[T any, P record[T]](kind, s string) (*T, error) {
	if s == "" {
		return nil, fmt.Errorf("empty %s", kind)
	}
	v := new(T)
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	if err := P(v).Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return v, nil
}

// encodeAnnotation returns the annotation value of v, a record of kind.
func encodeAnnotation(kind string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", kind, err)
	}
	return string(b), nil
}
