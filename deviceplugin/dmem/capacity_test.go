package dmem

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCapacity(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Region
		wantErr string
	}{
		{name: "two GPUs and a drm device", in: "nvidia/00000000:1b:00.0/vidmem 42949672960\nnvidia/00000000:43:00.0/vidmem 60129542144\ndrm/0000:c6:00.0/vram 1073741824\n",
			want: []Region{{Name: "nvidia/00000000:1b:00.0/vidmem", Bytes: 42949672960}, {Name: "nvidia/00000000:43:00.0/vidmem", Bytes: 60129542144}, {Name: "drm/0000:c6:00.0/vram", Bytes: 1073741824}}},
		{name: "empty: no regions", in: "", want: nil},
		{name: "no trailing newline", in: "r 1", want: []Region{{Name: "r", Bytes: 1}}},
		{name: "zero", in: "r 0\n", want: []Region{{Name: "r"}}},
		{name: "max is no size", in: "r max\n", wantErr: "not a decimal number"},
		{name: "leading zero", in: "r 01\n", wantErr: "not a decimal number"},
		{name: "negative", in: "r -1\n", wantErr: "not a decimal number"},
		{name: "overflow", in: "r 18446744073709551616\n", wantErr: "not a decimal number"},
		{name: "three fields", in: "r 1 2\n", wantErr: "want \"<region> <bytes>\""},
		{name: "tab separated", in: "r\t1\n", wantErr: "want \"<region> <bytes>\""},
		{name: "two spaces", in: "r  1\n", wantErr: "want \"<region> <bytes>\""},
		{name: "duplicate", in: "r 1\nr 2\n", wantErr: "listed twice"},
		{name: "non-ASCII name", in: "r\u00e9 1\n", wantErr: "printable ASCII"},
		{name: "too long a name", in: strings.Repeat("r", maxRegionName+1) + " 1\n", wantErr: "1..256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCapacity([]byte(tt.in))
			if !errorMatches(t, err, tt.wantErr) {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("regions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMax(t *testing.T) {
	got, err := ParseMax([]byte("nvidia/00000000:02:00.0/vidmem max\nnvidia/00000000:03:00.0/vidmem 4294967296\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Region{{Name: "nvidia/00000000:02:00.0/vidmem", Max: true}, {Name: "nvidia/00000000:03:00.0/vidmem", Bytes: 4 << 30}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("regions (-want +got):\n%s", diff)
	}
	if got := Format(want); got != "nvidia/00000000:02:00.0/vidmem max\nnvidia/00000000:03:00.0/vidmem 4294967296\n" {
		t.Errorf("Format = %q", got)
	}
}

func TestGPURegion(t *testing.T) {
	regions := []Region{{Name: "drm/0000:07:00.0/vram"}, {Name: "nvidia/00000000:07:00.0/vidmem"}, {Name: "nvidia/0001:1B:00.1/vidmem"}}
	tests := []struct {
		bus, want, wantErr string
	}{
		{bus: "0000:07:00.0", want: "nvidia/00000000:07:00.0/vidmem"},
		{bus: "00000000:07:00.0", want: "nvidia/00000000:07:00.0/vidmem"},
		{bus: "0001:1b:00.1", want: "nvidia/0001:1B:00.1/vidmem"},
		{bus: "0000:08:00.0", wantErr: "no dmem region"},
		{bus: "07:00.0", wantErr: "want <domain>:<bus>:<device>.<function>"},
		{bus: "0000:07:00", wantErr: "want <domain>:<bus>:<device>.<function>"},
		{bus: "0000:07:40.0", wantErr: "want <domain>:<bus>:<device>.<function>"},
	}
	for _, tt := range tests {
		got, err := GPURegion(regions, tt.bus)
		if !errorMatches(t, err, tt.wantErr) {
			continue
		}
		if got != tt.want {
			t.Errorf("GPURegion(%q) = %q, want %q", tt.bus, got, tt.want)
		}
	}
}

// FuzzParseCapacity: the decoder never panics, and what it accepts it
// accepts again, unchanged, once formatted (strict: one spelling per
// value).
func FuzzParseCapacity(f *testing.F) {
	f.Add("nvidia/00000000:02:00.0/vidmem 102641958912\n")
	f.Add("a 1\nb max\n")
	f.Add("a 1\na 2")
	f.Fuzz(func(t *testing.T, in string) {
		for _, parse := range []func([]byte) ([]Region, error){ParseCapacity, ParseMax} {
			got, err := parse([]byte(in))
			if err != nil {
				continue
			}
			again, err := parse([]byte(Format(got)))
			if err != nil {
				t.Fatalf("%q: formatted %q does not parse: %v", in, Format(got), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Fatalf("%q: round trip (-first +again):\n%s", in, diff)
			}
		}
	})
}

// errorMatches reports whether a result is to be checked: err must be
// nil when want is "" (then true), else contain want (then false).
func errorMatches(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return true
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want %q", err, want)
	}
	return false
}
