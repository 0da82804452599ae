package chartrender

import (
	"os"
	"testing"
)

// decodeFile reads the manifest at path and decodes it with DecodeStrict.
func decodeFile(t *testing.T, path string) []Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := DecodeStrict(path, b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
