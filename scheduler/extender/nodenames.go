package extender

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// wireArgs is extenderv1.ExtenderArgs as the handlers decode it: the same
// JSON fields, with the node names read by nodeNameList.
type wireArgs struct {
	Pod       *v1.Pod       `json:"pod"`
	Nodes     *v1.NodeList  `json:"nodes,omitempty"`
	NodeNames *nodeNameList `json:"nodenames,omitempty"`
}

// args returns the decoded call as kube-scheduler's type.
func (a *wireArgs) args() *extenderv1.ExtenderArgs {
	out := &extenderv1.ExtenderArgs{Pod: a.Pod, Nodes: a.Nodes}
	if a.NodeNames != nil {
		out.NodeNames = (*[]string)(a.NodeNames)
	}
	return out
}

// nodeNameList decodes a JSON array of node names with one allocation for
// all of them, where encoding/json makes one per name (5,000 per call at
// 5,000 nodes): it copies the array once and keeps each plain name as a
// substring of the copy. A name with an escape, a control character or a
// non-ASCII byte (never a valid node name) is decoded by encoding/json, so
// the result is always what encoding/json would give.
type nodeNameList []string

// UnmarshalJSON implements json.Unmarshaler. encoding/json hands it one
// complete, syntactically valid JSON value.
func (l *nodeNameList) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil // as encoding/json leaves a slice on null
	}
	raw := string(data)
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '[' {
		return fmt.Errorf("nodenames: want an array of strings, got %.20q", raw)
	}
	names := make([]string, 0, elements(raw))
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		if strings.HasPrefix(raw[i:], "null") {
			// encoding/json leaves a string alone on null: "".
			names = append(names, "")
			i = skipSpace(raw, i+len("null"))
			if i < len(raw) && raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
			continue
		}
		if raw[i] != '"' {
			return errors.New("nodenames: an element is not a string")
		}
		end, plain := stringEnd(raw, i+1)
		if end == len(raw) {
			return errors.New("nodenames: unterminated string")
		}
		if plain {
			names = append(names, raw[i+1:end])
		} else {
			var s string
			if err := json.Unmarshal(data[i:end+1], &s); err != nil {
				return fmt.Errorf("nodenames: %w", err)
			}
			names = append(names, s)
		}
		i = skipSpace(raw, end+1)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	if i == len(raw) {
		return errors.New("nodenames: unterminated array")
	}
	*l = names
	return nil
}

// elements counts the elements of a JSON array of strings: the commas
// outside its strings, plus one. (Counting every comma would let a body of
// one long string of commas reserve a slot per byte.)
func elements(raw string) int {
	n := 1
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			i, _ = stringEnd(raw, i+1)
		case ',':
			n++
		}
	}
	return n
}

// stringEnd returns the index of the closing quote of the JSON string whose
// content starts at i (len(s) when there is none), and whether the content
// is plain printable ASCII without escapes.
func stringEnd(s string, i int) (int, bool) {
	plain := true
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, plain
		case c == '\\':
			plain = false
			i++ // the escaped byte is never the closing quote
		case c < 0x20 || c >= 0x80:
			plain = false
		}
	}
	return len(s), plain
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
