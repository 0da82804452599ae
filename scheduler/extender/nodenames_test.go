package extender

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decodeBoth decodes s as a []string with encoding/json and with
// nodeNameList (through encoding/json, which checks the syntax first, as
// the handlers do).
func decodeBoth(s string) (std []string, stdErr error, ours []string, oursErr error) {
	stdErr = json.Unmarshal([]byte(s), &std)
	var l nodeNameList
	oursErr = json.Unmarshal([]byte(s), &l)
	return std, stdErr, []string(l), oursErr
}

func TestNodeNameList(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: `[]`, want: []string{}},
		{in: ` [ "a" , "b-1.example" ] `, want: []string{"a", "b-1.example"}},
		{in: `["node-0","node-1","node-2"]`, want: []string{"node-0", "node-1", "node-2"}},
		{in: `["esc\"aped","tab\tx","\u00e9t\u00e9"]`, want: []string{`esc"aped`, "tab\tx", "été"}},
		{in: `["ünïcode", "a"]`, want: []string{"ünïcode", "a"}},
		{in: `[null,"a"]`, want: []string{"", "a"}},
		{in: `null`},
		{in: `[1]`, wantErr: true},
		{in: `["a",{}]`, wantErr: true},
		{in: `{"a":1}`, wantErr: true},
		{in: `"a"`, wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			std, stdErr, got, err := decodeBoth(tc.in)
			if (err != nil) != tc.wantErr || (stdErr != nil) != tc.wantErr {
				t.Fatalf("errors: ours %v, encoding/json %v; want error %v", err, stdErr, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(std, got); diff != "" {
				t.Errorf("differs from encoding/json (-json +ours):\n%s", diff)
			}
		})
	}
}

// TestNodeNameListReservesByElements: commas inside names do not count as
// elements, so a hostile body cannot make the decoder reserve a slot per
// byte.
func TestNodeNameListReservesByElements(t *testing.T) {
	body := `["` + strings.Repeat(",", 1<<16) + `","a,b"]`
	for _, tc := range []struct {
		in   string
		want int
	}{{body, 2}, {`[]`, 1}, {`["a","b","c"]`, 3}, {`["a\",b","c"]`, 2}} {
		if got := elements(tc.in); got != tc.want {
			t.Errorf("elements(%.40q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	var l nodeNameList
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || cap(l) != 2 {
		t.Errorf("decoded %d names with room for %d, want 2 and 2", len(l), cap(l))
	}
}

// FuzzNodeNameList: on any input nodeNameList fails exactly when
// encoding/json's []string does, and otherwise gives the same names.
func FuzzNodeNameList(f *testing.F) {
	for _, s := range []string{`[]`, `["a","b"]`, `["\u0041\\"]`, `[null]`, `[1]`, `["a",]`, `["\xff"]`, "[\"a\"\n,\t\"b\"]", `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		std, stdErr, got, err := decodeBoth(s)
		if (err != nil) != (stdErr != nil) {
			t.Fatalf("%q: ours %v, encoding/json %v", s, err, stdErr)
		}
		if err == nil && !cmp.Equal(std, got) && (len(std) != 0 || len(got) != 0) {
			t.Fatalf("%q: ours %q, encoding/json %q", s, got, std)
		}
	})
}

// BenchmarkNodeNameList decodes 5,000 node names both ways.
func BenchmarkNodeNameList(b *testing.B) {
	names := make([]string, 5000)
	for i := range names {
		names[i] = "gpu-node-" + strings.Repeat("x", i%7) + "-" + string(rune('a'+i%26))
	}
	body, err := json.Marshal(names)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []string
			if err := json.Unmarshal(body, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nodeNameList", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out nodeNameList
			if err := json.Unmarshal(body, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
