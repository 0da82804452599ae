package api

import (
	"strings"
	"testing"
)

// checkErr fails the test unless err is what a table case wants: no error
// when want is "", else an error whose text contains want. It reports
// whether the case wanted an error (the caller then has nothing more to
// check).
func checkErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	return true
}

// inventoryCase changes a valid inventory; wantErr is what Validate then
// says ("" for nothing).
type inventoryCase struct {
	name    string
	change  func(inv *Inventory)
	wantErr string
}

// testValidate runs each case on a fresh inventory from base.
func testValidate(t *testing.T, base func() *Inventory, tests []inventoryCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := base()
			tc.change(inv)
			checkErr(t, inv.Validate(), tc.wantErr)
		})
	}
}

// annotation is a record the annotations carry.
type annotation interface {
	Validate() error
	Encode() (string, error)
}

// roundTrip checks that a record a decoder accepted is valid, and returns
// what parse makes of its encoding.
func roundTrip[T annotation](t *testing.T, v T, parse func(string) (T, error)) T {
	t.Helper()
	if err := v.Validate(); err != nil {
		t.Fatalf("accepted an invalid record: %v", err)
	}
	enc, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := parse(enc)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", enc, err)
	}
	return back
}
